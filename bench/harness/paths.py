"""Where the bench lives and keeps things: the repository root, bench/results/ and bench/lua/."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
LUA = BENCH_DIR / "lua"
