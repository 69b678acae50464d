"""A before/after table of two results files (`--compare`; the README's optimisation table)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

# (row label, path to the figure in the results file's `figures`)
COMPARED: tuple[tuple[str, tuple[str, str]], ...] = (
    ("GET via gateway c32, req/s", ("get_gateway_c32", "rps")),
    ("GET via gateway c32, p99 ms", ("get_gateway_c32", "p99_ms")),
    ("GET direct c32, req/s", ("get_direct_c32", "rps")),
    ("GET direct c32, p99 ms", ("get_direct_c32", "p99_ms")),
    ("gateway / direct (same round)", ("gateway_ratio", "median")),
    ("GET via gateway c128, req/s", ("get_gateway_c128", "rps")),
    ("GET via gateway c128, p50 ms", ("get_gateway_c128", "p50_ms")),
    ("GET via gateway c128, p99 ms", ("get_gateway_c128", "p99_ms")),
    ("POST c32, req/s", ("create_c32", "rps")),
    ("POST c32, p50 ms", ("create_c32", "p50_ms")),
    ("POST c32, p99 ms", ("create_c32", "p99_ms")),
    ("event lag at 100/s, p50 ms", ("event_lag", "p50_ms")),
    ("event lag at 100/s, p99 ms", ("event_lag", "p99_ms")),
    ("idle RSS, five services, MiB", ("memory_idle", "total_rss_mib")),
    ("idle PSS, five services, MiB", ("memory_idle", "total_pss_mib")),
    ("make up -> healthy (infra running), s", ("startup", "services_only_seconds")),
    ("make up -> healthy (after make down), s", ("startup", "from_stopped_seconds")),
)


def pick(figures: object, path: Iterable[str]) -> float | None:
    """The number at `path` in a results file's figures (None: absent or not a number)."""
    value = figures
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def number(value: float | None) -> str:
    """A table cell: two decimals below 10, one above."""
    if value is None:
        return ""
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


def compare(before_file: Path, after_file: Path) -> None:
    """A before/after table of two results files (the README's optimisation table)."""
    before: object = json.loads(before_file.read_text())["figures"]
    after: object = json.loads(after_file.read_text())["figures"]
    print(f"| figure | before ({before_file.name}) | after ({after_file.name}) | after / before |")
    print("|---|---:|---:|---:|")
    for label, path in COMPARED:
        b, a = pick(before, path), pick(after, path)
        ratio = f"{a / b:.2f}" if a is not None and b else ""
        print(f"| {label} | {number(b)} | {number(a)} | {ratio} |")
