"""Progress lines: long work says what it is doing."""

from __future__ import annotations

import time


def log(message: str) -> None:
    """A progress line, with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
