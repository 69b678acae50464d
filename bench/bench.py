"""Benchmarks of a running stack (`make bench`): prints a table and writes JSON under bench/results/.

Loopback only, every load bounded in time and count. Needs wrk (installed through apt when missing
and running as root). See bench/README.md for what each figure means and how to read it.

    make up && make bench                              # everything, against the `make up` stack
    make bench BENCH_ARGS="--only get --repeat 5"      # one section, more rounds
    uv run --no-sync python bench/bench.py --compare before.json after.json
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

# `python bench/bench.py` puts bench/ first on sys.path, so the package is `harness`; mypy, run from the
# repository root with explicit package bases, knows the same directory as `bench.harness`.
if TYPE_CHECKING:
    from bench.harness.cli import main
else:
    from harness.cli import main

if __name__ == "__main__":
    sys.exit(main(__doc__))
