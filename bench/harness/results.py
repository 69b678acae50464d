"""The results file: figures, checks, arguments, machine and commit as JSON under bench/results/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from .figures import Checks, Figures
from .paths import RESULTS, ROOT


def write_results(output: str | None, arguments: dict[str, object], figures: Figures, checks: Checks) -> Path:
    """Write the results file (`output`, default bench/results/bench-<time>.json); its path."""
    RESULTS.mkdir(exist_ok=True)
    out = Path(output) if output else RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "git_commit": _git_commit(),
        "arguments": arguments,
        "figures": figures,
        "checks": checks,
    }
    out.write_text(json.dumps(document, indent=2, default=str))
    return out


def shown(path: Path) -> Path:
    """`path` relative to the repository when it is inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
