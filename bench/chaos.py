"""Chaos run against the running `make up` stack (`make chaos`): kill -9 a random process every 10 s under load.

A steady mix of creates (each with an Idempotency-Key, retried with the same key), reads, updates and deletes
goes through the gateway while a random supervised program (gateway, a service instance, PostgreSQL, Kafka)
gets SIGKILL every --interval seconds; supervisord restarts it, nobody else. Then the run waits (bounded) for
the stack to settle and checks that every acknowledged create exists exactly once (or is gone if deleted),
has one billing account, and that analytics counted every event once. Loopback only; bounded in time.

    make up && make chaos                              # 3 minutes (CHAOS_SECONDS)
    make chaos CHAOS_SECONDS=60 CHAOS_ARGS="--seed 7 --output /tmp/chaos.json"

Exit status 1 when anything was lost or duplicated or the stack did not come back (the reasons are printed).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

# `python bench/chaos.py` puts bench/ first on sys.path, so the package is `harness`; mypy, run from the
# repository root with explicit package bases, knows the same directory as `bench.harness`.
if TYPE_CHECKING:
    from bench.harness.chaos import main
else:
    from harness.chaos import main

if __name__ == "__main__":
    sys.exit(main(__doc__))
