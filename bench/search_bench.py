"""Name search over 100,000 patients: p50/p99 of GET /patients?name=...'s query on a scratch database.

    uv run --no-sync python bench/search_bench.py                 # a throwaway PostgreSQL cluster of its own
    uv run --no-sync python bench/search_bench.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

With --database-url it creates (and drops) a database `search_bench` on that server. It migrates it (so the
indexes are those of migration 0005), inserts the rows in one INSERT ... SELECT, ANALYZEs, then times the
service's own search statements (patients.search.search_statements: the page and the count, as a paged GET runs them)
for random three-letter pieces of names, and prints the figures with the plan of one search.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.postgres import PostgresCluster
from devstack.process import free_port
from patient_service.patients.search import PatientQuery, search_statements
from pm_common.database import upgrade_database

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Niklaus", "Radia", "Tim"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Wirth"]
INSERT = text(
    """
    INSERT INTO patients (id, name, email, address, date_of_birth, registered_date)
    SELECT gen_random_uuid(),
           ((:first)::text[])[1 + i % 12] || ' ' || ((:last)::text[])[1 + i / 12 % 10] || ' ' || left(md5(i::text), 6),
           'bench' || i || '@example.com',
           i || ' Bench Street',
           date '1930-01-01' + (i % 30000),
           date '2015-01-01' + (i % 3650)
    FROM generate_series(1, :rows) AS i
    """
)


def md5_prefix(i: int) -> str:
    """The first 4 hex digits of the suffix the INSERT gives patient i."""
    return hashlib.md5(str(i).encode()).hexdigest()[:4]  # noqa: S324 (test data, not security)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(url: str, *, rows: int, searches: int) -> None:
    await asyncio.to_thread(upgrade_database, url, script_location="patient_service:migrations")
    engine = create_async_engine(url, pool_size=2)  # the searches check out one while the ANALYZE holds one
    figures: list[str] = []
    try:
        async with engine.begin() as connection:
            started = time.perf_counter()
            await connection.execute(INSERT, {"first": FIRST, "last": LAST, "rows": rows})
            print(f"inserted {rows:,} patients in {time.perf_counter() - started:.1f} s")
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE patients"))
            randomly = random.Random(7)
            common = [word[i : i + 3].lower() for word in FIRST + LAST for i in range(len(word) - 2)]
            # A person's name: "<first> <last> <6 hex>"; searched by its last name and the start of its suffix.
            chosen = [randomly.randrange(1, rows + 1) for _ in range(50)]
            people = [f"{LAST[i // 12 % 10]} {md5_prefix(i)}" for i in chosen]
            for label, terms in (("a person's name (few matches)", people), ("a common 3-letter piece", common)):
                timings: list[float] = []
                for n in range(searches + 20):
                    query = PatientQuery(name_contains=[randomly.choice(terms)], page=0, size=20)
                    statements, values = search_statements(query)
                    started = time.perf_counter()
                    await statements.rows.all(engine, values)
                    await statements.count.all(engine, values)
                    if n >= 20:  # the first ones warm the caches
                        timings.append((time.perf_counter() - started) * 1000)
                figures.append(
                    f"name search, {label}: page of 20 + total count, {len(timings)} searches over {rows:,} "
                    f"patients: p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms"
                )
            statements, values = search_statements(PatientQuery(name_contains=[people[0]], page=0, size=20))
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            explained = await driver.fetch(f"EXPLAIN ANALYZE {statements.rows.sql}", *statements.rows.arguments(values))
            plan = [str(row[0]) for row in explained]
    finally:
        await engine.dispose()
    print("plan of one search for a person's name (first page of 20):")
    print("\n".join(f"  {line}" for line in plan))
    print("\n".join(figures))


async def on_server(url: str, *, rows: int, searches: int) -> None:
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    scratch = make_url(url).set(database="search_bench").render_as_string(hide_password=False)
    try:
        async with admin.connect() as connection:
            await connection.execute(text("DROP DATABASE IF EXISTS search_bench"))
            await connection.execute(text("CREATE DATABASE search_bench"))
        await run(scratch, rows=rows, searches=searches)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text("DROP DATABASE IF EXISTS search_bench"))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a server to create the scratch database on (default: own cluster)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=500)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(on_server(args.database_url, rows=args.rows, searches=args.searches))
        return
    home = Path(tempfile.mkdtemp(prefix="search-bench-"))
    os.chmod(home, 0o755)  # noqa: S103 (the postgres user, as initdb refuses root, must reach its data directory)
    cluster = PostgresCluster(data_dir=home / "data", port=free_port(), log_file=home / "postgres.log")
    try:
        cluster.init()
        cluster.start(fast=True)
        asyncio.run(run(cluster.create_database("search_bench"), rows=args.rows, searches=args.searches))
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
