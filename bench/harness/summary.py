"""What repeated runs come down to: medians over rounds, nearest-rank percentiles, rounding."""

from __future__ import annotations

import statistics

from .figures import LoadFigures
from .wrk import WrkRun


def medians(runs: list[WrkRun]) -> LoadFigures:
    """Medians over repeated runs of one load; errors summed; CPU per request from the median run."""
    by_rps = sorted(runs, key=lambda r: r.rps)
    middle = by_rps[len(by_rps) // 2]
    cpu_per_request = {
        role: round(1000 * used / middle.requests, 3)
        for role, used in middle.cpu.items()
        if role not in ("elapsed_seconds", "others") and middle.requests
    }
    return {
        "rps": round(statistics.median(r.rps for r in runs), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
        "errors": sum(r.errors for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "runs": len(runs),
        "disturbed_runs": sum(r.disturbed for r in runs),
        "cpu_ms_per_request": cpu_per_request,
        "each": [r.as_json() for r in runs],
    }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    rank = max(1, min(len(values), int(-(-pct * len(values) // 100))))
    return values[rank - 1]


def rounded(value: float | None, digits: int = 1) -> float | None:
    """`value` rounded, None staying None."""
    return None if value is None else round(value, digits)
