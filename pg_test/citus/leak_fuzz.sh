#!/usr/bin/env bash
# The project's tenant leak fuzzer (pg_test/security/leak_fuzz.sh) pointed at a Citus
# coordinator (issue #25, item 2), both ways: with floe's routing (the coordinator pins each
# statement to the tenant of its token) and without it (floe.citus_tenant_routing = off:
# every shard is asked and the workers' policies, with the tenant Citus forwarded, judge
# alone). The reference platform's OLTP tables distributed by tenant_id, the application role
# restricted to signed tokens, thousands of seeded random statements and the attacks naming
# other tenants: no other tenant's value or uuid in any output, prepared statements and
# cursors made under one tenant show only the tenant they run for, the data as seeded.
set -e
FLOE_FUZZ_CITUS=yes FLOE_FUZZ_ROUTING=on bash "$(dirname "$0")/../security/leak_fuzz.sh"
FLOE_FUZZ_CITUS=yes FLOE_FUZZ_ROUTING=off bash "$(dirname "$0")/../security/leak_fuzz.sh"
