#!/usr/bin/env bash
# floe.health()'s server.buffer_writes on a live server (issue #20, item 6): from PostgreSQL
# 16, pg_stat_io tells a query's evictions of dirty buffers (shared_buffers too small, the
# background writer too lax) from the writes of bulk operations through their ring of
# buffers (COPY). A COPY leaves the check ok; a large UPDATE with a small shared_buffers and
# the background writer off makes it warn. Up to 15, pg_stat_bgwriter.buffers_backend counts
# both as one: the check only shows the figure (a COPY alone raises it past the threshold:
# the false alarm the newer statistics avoid), and stays ok.
source "$(dirname "$0")/../lib/testlib.sh"

cluster_throwaway yes "shared_buffers = 16MB" "bgwriter_lru_maxpages = 0" \
    "checkpoint_timeout = 1h" "max_wal_size = 4GB"
make_test_db
major=$(q "SELECT current_setting('server_version_num')::int / 10000")
check() { q "SELECT status || ': ' || detail FROM floe.health() WHERE check_name = 'server.buffer_writes'"; }
if ((major >= 16)); then reset=io; else reset=bgwriter; fi
q "SELECT pg_stat_reset_shared('$reset')" >/dev/null
# The counters reach the shared statistics when a backend goes idle or exits.
settle() { sleep 1.5; q "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1 || true; }

echo "# COPY of about 200 MB into a new table"
q "CREATE TABLE big (id int, body text)"
q "COPY big FROM PROGRAM 'seq 1 2500000 | sed \"s/\$/,$(printf 'x%.0s' $(seq 1 60))/\"' (FORMAT csv)"
settle
after_copy=$(check)
echo "  $after_copy"
if ((major >= 16)); then
    expect_match "$after_copy" "^ok: backends evicted [0-9]+ of [0-9]+ buffers written \([0-9]+ %\); [0-9]+ more written by bulk operations" \
        "a COPY's ring writes are no evictions: ok"
    bulk=$(sed -E 's/.*; ([0-9]+) more written.*/\1/' <<<"$after_copy")
    ((bulk >= 10000)) || fail "the COPY's writes are counted as bulk ($bulk >= 10000)"
    echo "  ok - the COPY's $bulk blocks are counted as bulk writes"
else
    expect_match "$after_copy" "^ok: backends wrote [0-9]+ of [0-9]+ buffers .*pg_stat_io" \
        "up to 15 the figure is shown, never more than ok"
    by=$(sed -E 's/^ok: backends wrote ([0-9]+) of.*/\1/' <<<"$after_copy")
    ((by >= 10000)) || fail "15 counts the COPY as backend writes ($by >= 10000): the case the check cannot tell"
    echo "  ok - 15's buffers_backend counts the COPY's $by blocks as the backends' own"
fi

echo "# an UPDATE of every row with shared_buffers 16 MB and the background writer off"
q "UPDATE big SET body = body || 'y'"
settle
after_update=$(check)
echo "  $after_update"
if ((major >= 16)); then
    expect_match "$after_update" "^warn: backends evicted [0-9]+ of [0-9]+ buffers written \(([5-9][0-9]|100) %\)" \
        "queries evicting their own dirty buffers: warn"
    q "SELECT pg_stat_reset_shared('io')" >/dev/null
    settle
    expect_match "$(check)" "^ok: backends evicted [0-9]+ of" "statistics reset: ok again"
else
    expect_match "$after_update" "^ok: backends wrote" "up to 15: still only shown"
fi
