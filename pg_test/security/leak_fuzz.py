#!/usr/bin/env python3
"""Statements for the tenant leak fuzzer (pg_test/security/leak_fuzz.sh): random, seeded, over
the reference platform's OLTP schema and floe's own views, as the application role, which
must set its tenant with a signed token (each transaction starts with the tenant's token).

Writes, into DIR, for each tenant i (1..3):
  t<i>_blind.sql  statements that never name another tenant (its uuid appears nowhere): the
                  output must contain no other tenant's uuid and no other tenant's marker;
  t<i>_named.sql  statements that name other tenants' uuids (as an attacker who learned them
                  would): the output must contain no other tenant's marker (the uuids the
                  statement itself wrote may come back in Postgres's error details);
and switch.sql: prepared statements and a cursor made under one tenant and run under the
others, every result on stdout after an \\echo naming the tenant it ran for.

Usage: leak_fuzz.py DIR SEED STATEMENTS_PER_FILE TENANT_UUIDS TOKENS (both comma separated,
in the same order)
"""
import os
import random
import sys

TABLES = ["app.users", "app.companies", "app.campaigns", "app.leads", "app.email_accounts"]
TEXT_COLUMNS = {
    "app.users": ["email", "name"],
    "app.companies": ["name", "domain"],
    "app.campaigns": ["name"],
    "app.leads": ["email", "name"],
    "app.email_accounts": ["address", "provider"],
}
FLOE_READS = [
    "SELECT * FROM floe.queued_jobs",
    "SELECT * FROM floe.finished_jobs",
    "SELECT * FROM floe.dead_letters",
    "SELECT * FROM floe.content_policies",
    "SELECT * FROM floe.content_stats",
    "SELECT tenant, count(*) FROM floe.content GROUP BY 1",
    "SELECT * FROM floe.tenant_coverage()",
    "SELECT check_name, status, detail FROM floe.health()",
    "SELECT table_name, tenant_isolation, row_estimate FROM floe.inventory()",
    "SELECT * FROM floe.queue_metrics",
    "SELECT floe.current_tenant(), floe.current_tenant_or_null()",
    "SELECT * FROM floe.dequeue('fuzz', 5)",
]


def one(r: random.Random, others: list[str]) -> str:
    """One statement (without the transaction around it); `others` is empty for blind files."""
    t = r.choice(TABLES)
    col = r.choice(TEXT_COLUMNS[t])
    n = r.randint(1, 60)
    kinds = [
        lambda: f"SELECT * FROM {t}",
        lambda: f"SELECT * FROM {t} WHERE id = {n}",
        lambda: f"SELECT * FROM {t} WHERE id BETWEEN {n} AND {n + r.randint(0, 40)}",
        lambda: f"SELECT {col} FROM {t} WHERE {col} LIKE '%{r.choice('aeiou')}%' ORDER BY 1",
        lambda: f"SELECT string_agg({col}::text, ',') FROM {t}",
        lambda: f"SELECT count(*), min({col}::text), max({col}::text) FROM {t}",
        lambda: f"WITH x AS (SELECT * FROM {t}) SELECT * FROM x ORDER BY id DESC LIMIT {n}",
        lambda: f"SELECT * FROM {t} x WHERE EXISTS (SELECT 1 FROM {r.choice(TABLES)} y WHERE y.id = x.id)",
        lambda: "SELECT l.email, c.name, k.name FROM app.leads l "
        "LEFT JOIN app.companies c ON c.id = l.company_id "
        "LEFT JOIN app.campaigns k ON k.id = l.campaign_id",
        lambda: f"SELECT l.* FROM app.leads l, app.companies c WHERE c.id = {n} AND l.company_id = c.id",
        lambda: "SELECT email FROM app.users UNION ALL SELECT email FROM app.leads "
        "UNION ALL SELECT address FROM app.email_accounts",
        lambda: f"SELECT * FROM {t} ORDER BY random() LIMIT 5",
        lambda: f"SELECT to_jsonb(x) FROM {t} x",
        lambda: f"SELECT * FROM ONLY {t}",
        lambda: f"UPDATE {t} SET {col} = {col} WHERE id = {n} RETURNING *",
        lambda: f"UPDATE {t} SET {col} = {col} || '' RETURNING *",
        lambda: f"DELETE FROM {t} WHERE id = {n} RETURNING *",
        lambda: f"COPY (SELECT * FROM {t}) TO STDOUT",
        lambda: f"DECLARE c{n} CURSOR FOR SELECT * FROM {t}; FETCH ALL FROM c{n}",
        lambda: f"EXPLAIN (COSTS OFF) SELECT * FROM {t} WHERE {col} = 'x'",
        lambda: f"SELECT * FROM {t} TABLESAMPLE BERNOULLI (50)",
        lambda: f"SELECT row_to_json(x) FROM (SELECT * FROM {t} LIMIT {n}) x",
        lambda: f"SELECT {col}, lag({col}) OVER (ORDER BY id) FROM {t}",
        lambda: "SELECT * FROM app.tenants",
        lambda: "INSERT INTO app.companies (name, domain) VALUES ('fuzz', 'fuzz.example') RETURNING *",
        lambda: r.choice(FLOE_READS),
    ]
    if others:
        o = r.choice(others)
        kinds += [
            lambda: f"SELECT * FROM {t} WHERE tenant_id = '{o}'"
            if t != "app.tenants" else f"SELECT * FROM app.tenants WHERE id = '{o}'",
            lambda: f"SELECT * FROM app.tenants WHERE id = '{o}'",
            lambda: f"UPDATE {t} SET {col} = {col} WHERE tenant_id = '{o}' RETURNING *",
            lambda: f"DELETE FROM {t} WHERE tenant_id = '{o}' RETURNING *",
            lambda: f"INSERT INTO app.companies (tenant_id, name, domain) VALUES ('{o}', 'x', 'x') RETURNING *",
            lambda: f"UPDATE {t} SET tenant_id = '{o}' WHERE id = {n} RETURNING *",
            lambda: f"INSERT INTO app.leads (tenant_id, company_id, email, name) VALUES ('{o}', {n}, 'x@x', 'x') RETURNING *",
            lambda: f"SELECT floe.content_get_text(hash, '{o}') FROM floe.content LIMIT 1",
            lambda: f"SELECT floe.set_tenant('{o}'); SELECT * FROM {t}",
            lambda: f"SET LOCAL app.current_tenant_id = '{o}'; SELECT * FROM {t}",
            lambda: f"SELECT * FROM floe.queued_jobs WHERE tenant = '{o}'",
            lambda: f"SELECT * FROM floe.content_policies WHERE tenant = '{o}'",
            lambda: f"SELECT floe.set_content_policy('{o}', warm_after => '1 day')",
        ]
    return r.choice(kinds)()


def write(path: str, token: str, r: random.Random, count: int, others: list[str]) -> None:
    with open(path, "w") as f:
        f.write("SET ROLE platform_app;\n")
        for _ in range(count):
            # Each statement in its own transaction (rolled back: the data stay as seeded),
            # the tenant set from the tenant's signed token (platform_app must use tokens).
            f.write(f"BEGIN;\nSELECT floe.set_tenant_token('{token}') \\g /dev/null\n")
            f.write(one(r, others) + ";\nROLLBACK;\n")


def main() -> None:
    out, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tenants, tokens = sys.argv[4].split(","), sys.argv[5].split(",")
    r = random.Random(seed)
    for i, (t, token) in enumerate(zip(tenants, tokens), 1):
        others = [o for o in tenants if o != t]
        write(os.path.join(out, f"t{i}_blind.sql"), token, r, count, [])
        write(os.path.join(out, f"t{i}_named.sql"), token, r, count, others)
    with open(os.path.join(out, "switch.sql"), "w") as f:
        f.write("SET ROLE platform_app;\n")
        f.write(f"BEGIN;\nSELECT floe.set_tenant_token('{tokens[0]}') \\g /dev/null\n")
        for k, t in enumerate(TABLES):
            f.write(f"PREPARE p{k} AS SELECT * FROM {t};\n")
        f.write("EXECUTE p0;\nCOMMIT;\n")
        for _ in range(30):
            for i, token in enumerate(tokens, 1):
                f.write(f"BEGIN;\nSELECT floe.set_tenant_token('{token}') \\g /dev/null\n\\echo ==tenant {i}==\n")
                f.write(f"EXECUTE p{r.randrange(len(TABLES))};\n")
                f.write(f"DECLARE k CURSOR WITH HOLD FOR SELECT * FROM {r.choice(TABLES)};\n")
                f.write("COMMIT;\n")
                # the held cursor's rows were computed under tenant i: fetched after the
                # transaction ended, they are still tenant i's
                f.write("FETCH ALL FROM k;\nCLOSE k;\n")


if __name__ == "__main__":
    main()
