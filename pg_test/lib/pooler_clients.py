"""Clients of pg_test/tests/pgbouncer.sh, through pgbouncer in transaction mode.

  tenants  8 clients x N transactions as the application role: each sets a random tenant
           with floe.set_tenant() in its transaction, reads the isolated table and writes a row;
           every 7th transaction forgets the tenant (it must fail closed), every 11th first sets
           the tenant variable for the session (a leftover a pooler hands on: it must not count).
  queue    4 workers dequeue and complete a queue through the pooler until it is empty.
  prepared psycopg's default prepared statements (prepare_threshold 5) through the pooler.

Prints key=value lines for the shell to check.
"""
import random
import sys
import threading

import psycopg

DSN, MODE = sys.argv[1], sys.argv[2]
TENANTS = sys.argv[3].split(",") if len(sys.argv) > 3 else []
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 0

lock = threading.Lock()
totals = {"transactions": 0, "foreign_rows": 0, "forgotten": 0, "failed_closed": 0, "leaked": 0,
          "session_sets": 0, "written": 0, "errors": 0}
last_error = []


def add(key, n=1):
    with lock:
        totals[key] += n


def tenant_client(seed):
    rng = random.Random(seed)
    with psycopg.connect(DSN, prepare_threshold=None, autocommit=True) as conn:
        for i in range(ROUNDS):
            tenant = rng.choice(TENANTS)
            try:
                if i % 11 == 5:
                    # A session-wide SET from this client: behind the pooler it lands on a
                    # server connection that others will use.
                    conn.execute("SELECT set_config('app.current_tenant_id', %s, false)", (tenant,))
                    add("session_sets")
                with conn.transaction():
                    if i % 7 == 3:
                        add("forgotten")
                        try:
                            with conn.transaction():
                                rows = conn.execute("SELECT tenant_id FROM notes").fetchall()
                            add("leaked")   # read without a tenant of its own: a leak
                            last_error.append(f"forgotten tenant read {len(rows)} rows")
                        except psycopg.errors.InsufficientPrivilege as e:
                            msg = str(e)
                            if "no tenant is set" in msg or "set for the session" in msg:
                                add("failed_closed")
                            else:
                                add("errors")
                                last_error.append(msg)
                        continue
                    conn.execute("SELECT floe.set_tenant(%s)", (tenant,))
                    rows = conn.execute("SELECT tenant_id::text FROM notes").fetchall()
                    add("foreign_rows", sum(1 for (t,) in rows if t != tenant))
                    conn.execute("INSERT INTO notes (tenant_id, note) VALUES (%s, %s)", (tenant, tenant))
                    add("written")
                add("transactions")
            except Exception as e:  # noqa: BLE001 - counted and shown
                add("errors")
                last_error.append(repr(e))


def queue_worker(done):
    with psycopg.connect(DSN, prepare_threshold=None, autocommit=True) as conn:
        while True:
            with conn.transaction():
                jobs = conn.execute("SELECT id, lease FROM floe.dequeue('work', batch => 10)").fetchall()
                for job_id, lease in jobs:
                    conn.execute("SELECT floe.complete(%s, %s)", (job_id, lease))
            if not jobs:
                return
            with lock:
                done.extend(j for j, _ in jobs)


if MODE == "tenants":
    threads = [threading.Thread(target=tenant_client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, v in totals.items():
        print(f"{k}={v}")
    if last_error:
        print("last_error=" + last_error[-1].replace("\n", " "))
elif MODE == "queue":
    done = []
    threads = [threading.Thread(target=queue_worker, args=(done,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"completed={len(done)}")
    print(f"distinct={len(set(done))}")
elif MODE == "prepared":
    # psycopg prepares a statement on the server after 5 executions; in transaction mode the
    # next transaction may run on another server connection (or one that has it already).
    try:
        conns = [psycopg.connect(DSN, autocommit=True) for _ in range(3)]
        for i in range(40):
            for c in conns:
                with c.transaction():
                    c.execute("SELECT %s::int + 1", (i,)).fetchone()
        print("prepared=ok")
    except Exception as e:  # noqa: BLE001
        print("prepared=" + type(e).__name__ + ": " + str(e).splitlines()[0])
