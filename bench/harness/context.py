"""What the sections of the bench share: where the stack is, the login token, wrk and the rounds per load."""

from __future__ import annotations

from dataclasses import dataclass

from .endpoints import Endpoints
from .processes import StackProcesses
from .wrk import Wrk


@dataclass(frozen=True)
class BenchContext:
    """The stack under load and how each load is run."""

    endpoints: Endpoints
    token: str
    wrk: Wrk
    processes: StackProcesses
    repeat: int
