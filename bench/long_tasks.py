"""Benchmark: what a long task's bookkeeping costs, as ratios to the database work it wraps.

    python bench/long_tasks.py [--quick] [--postgres-url URL] [--mysql-url URL]

A real ``afterparty run`` of a task with ``atomic=False`` times, inside its body, on the
records' own database:

- a bare single-row ``ctx.db`` insert (committed by itself: autocommit);
- one ``ctx.progress`` call (most calls only remember the report: at most four a second are
  written);
- one ``ctx.batch(checkpoint=...)`` around a single-row insert, against the same insert in a
  plain ``BEGIN``/``COMMIT`` through the driver: the difference is the batch's bookkeeping (the
  checkpoint's write and the fenced commit);
- a backfill's loop: batches of 1,000 rows (``executemany``), each with its checkpoint and a
  progress report, against the same batches in plain ``BEGIN``/``COMMIT`` transactions: the
  share of bookkeeping in a batch, which the project keeps under 5 %;
- the same plain batches with what any fenced checkpoint must add, in bare SQL (one UPDATE of a
  checkpoint row, conditional on a locking read of an epoch row): the floor of that share.

Each figure is the median of several rounds. Within a round the contenders take turns one batch
(or insert) at a time, and the share is the median of the shares of those pairs: a change of
the machine's load meets both contenders alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TASK = '''
import json, statistics, time
from afterparty import task

ROUNDS, SINGLES, BIG, BACKFILL = {rounds}, {singles}, 1000, {backfill}


def plain(ctx, rows):
    cursor = ctx.db.raw.cursor()
    cursor.execute("BEGIN")
    ctx.db.executemany("INSERT INTO bench_rows (batch, n) VALUES (%s, %s)", rows)
    cursor.execute("COMMIT")


def fenced(ctx, rows, locking):
    """What any fenced batch must add, in bare SQL: a checkpoint written in the batch's
    transaction only while an epoch row (read with a locking read) holds the writer's epoch."""
    cursor = ctx.db.raw.cursor()
    cursor.execute("BEGIN")
    ctx.db.executemany("INSERT INTO bench_rows (batch, n) VALUES (%s, %s)", rows)
    ctx.db.execute("UPDATE bench_checkpoint SET cp = %s WHERE k = 1 AND EXISTS (SELECT 1 FROM "
                   "bench_epoch WHERE k = 1 AND epoch = 1" + locking + ")", (str(len(rows)),))
    cursor.execute("COMMIT")


def timed(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


@task(description="bookkeeping benchmark", atomic=False)
def run(ctx):
    ctx.db.execute("CREATE TABLE bench_rows (batch INTEGER, n INTEGER)")
    ctx.db.execute("CREATE TABLE bench_checkpoint (k INTEGER PRIMARY KEY, cp TEXT)")
    ctx.db.execute("CREATE TABLE bench_epoch (k INTEGER PRIMARY KEY, epoch INTEGER)")
    ctx.db.execute("INSERT INTO bench_checkpoint (k, cp) VALUES (1, '0')")
    ctx.db.execute("INSERT INTO bench_epoch (k, epoch) VALUES (1, 1)")
    locking = "" if type(ctx.db.raw).__module__.startswith("sqlite3") else " FOR UPDATE"
    per = {{"insert": [], "progress": [], "batch_1": [], "plain_1": [], "batch_1000": [],
           "plain_1000": [], "share": [], "floor_share": []}}
    big = [(0, n) for n in range(BIG)]
    step = iter(range(10 ** 9))

    def insert_one():
        ctx.db.execute("INSERT INTO bench_rows (batch, n) VALUES (%s, %s)", (1, next(step)))

    def batch_of(rows):
        def work():
            with ctx.batch(checkpoint=next(step)):
                ctx.db.executemany("INSERT INTO bench_rows (batch, n) VALUES (%s, %s)", rows)
            ctx.progress(next(step), total=10 ** 9)
        return work

    def pairs(first, second, count):
        # Taking turns one batch at a time (each first on every other turn), so that a change
        # of the machine's load meets both alike.
        times = [], []
        for i in range(count):
            order = (0, 1) if i % 2 else (1, 0)
            for which in order:
                times[which].append(timed((first, second)[which]))
        return times

    for r in range(ROUNDS):
        per["insert"].append(statistics.median(timed(insert_one) for _ in range(SINGLES)))
        t = time.perf_counter()
        for i in range(SINGLES * 10):
            ctx.progress(r * SINGLES * 10 + i, total=ROUNDS * SINGLES * 10)
        per["progress"].append((time.perf_counter() - t) / (SINGLES * 10))
        batch, bare = pairs(batch_of([(1, 0)]), lambda: plain(ctx, [(1, 0)]), SINGLES)
        per["batch_1"].append(statistics.median(batch))
        per["plain_1"].append(statistics.median(bare))
        batch, bare = pairs(batch_of(big), lambda: plain(ctx, big), BACKFILL)
        per["batch_1000"].append(statistics.median(batch))
        per["plain_1000"].append(statistics.median(bare))
        per["share"].append(statistics.median((b - p) / b for b, p in zip(batch, bare)))
        least, bare = pairs(lambda: fenced(ctx, big, locking), lambda: plain(ctx, big), BACKFILL)
        per["floor_share"].append(statistics.median((f - p) / f for f, p in zip(least, bare)))
    print("BENCH " + json.dumps({{k: statistics.median(v) for k, v in per.items()}}))
'''


def measure(url: str, rounds: int, singles: int, backfill: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        tasks = Path(root) / "release_tasks"
        tasks.mkdir()
        (Path(root) / "pyproject.toml").write_text("[tool.afterparty]\n")
        (tasks / "20260101000000_bookkeeping.py").write_text(
            textwrap.dedent(TASK.format(rounds=rounds, singles=singles, backfill=backfill)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERPARTY_")}
        env["AFTERPARTY_DATABASE_URL"] = url.format(root=root)
        done = subprocess.run([sys.executable, "-m", "afterparty", "run"], cwd=root, env=env,
                              capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            if line.startswith("BENCH "):
                return dict(json.loads(line[6:]))
        raise SystemExit(f"the benchmark task failed on {url}:\n{done.stdout}{done.stderr}")


def fresh_database(url: str) -> tuple[str, object]:
    """A database of its own on a server, dropped afterwards."""
    import uuid

    name = f"ap_bench_{uuid.uuid4().hex[:8]}"
    base, _, _ = url.rpartition("/")
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")

        def drop() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    else:
        import pymysql

        from afterparty.backends.url import parse_url

        parsed = parse_url(url)
        options = {"host": parsed.host or "127.0.0.1", "port": parsed.port or 3306,
                   "user": parsed.username or "root", "password": parsed.password or ""}
        with pymysql.connect(**options) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")

        def drop() -> None:
            with pymysql.connect(**options) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE {name}")
    return f"{base}/{name}", drop


def report(backend: str, figures: dict[str, float]) -> str:
    bookkeeping_1 = figures["batch_1"] - figures["plain_1"]
    share = figures["share"]
    times = "\u00d7"  # the multiplication sign
    return (f"| {backend} | {figures['insert'] * 1e6:,.0f} µs "
            f"| {figures['progress'] * 1e6:,.1f} µs "
            f"({figures['progress'] / figures['insert']:.2f}{times}) "
            f"| {bookkeeping_1 * 1e6:,.0f} µs ({bookkeeping_1 / figures['insert']:.2f}{times}) "
            f"| {figures['batch_1000'] * 1e3:,.1f} ms vs {figures['plain_1000'] * 1e3:,.1f} ms "
            f"| {share * 100:.1f} % | {figures['floor_share'] * 100:.1f} % |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, SQLite only unless URLs are given")
    parser.add_argument("--postgres-url", help="a PostgreSQL server (a database of its own is made)")
    parser.add_argument("--mysql-url", help="a MySQL/MariaDB server (a database of its own is made)")
    args = parser.parse_args()
    rounds, singles, backfill = (3, 20, 5) if args.quick else (9, 200, 50)
    print("| backend | bare ctx.db insert | ctx.progress call | ctx.batch bookkeeping "
          "| a 1,000-row batch in a backfill vs a plain transaction | bookkeeping share "
          "| bare SQL's share (a fenced checkpoint alone) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    sqlite = measure("sqlite:///{root}/records.sqlite3", rounds, singles, backfill)
    print(report("SQLite", sqlite), flush=True)
    for backend, url in (("PostgreSQL", args.postgres_url), ("MariaDB", args.mysql_url)):
        if url:
            own, drop = fresh_database(url)
            try:
                print(report(backend, measure(own, rounds, singles, backfill)), flush=True)
            finally:
                drop()  # type: ignore[operator]


if __name__ == "__main__":
    main()
