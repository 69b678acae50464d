"""Dependencies of the routers: what the lifespan put on app.state, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.outbox.relay import OutboxSignal

# The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool,
# which cost a thread hand-off per request on the hot GET path (seen in py-spy; bench/README.md).


async def get_engine(request: Request) -> AsyncEngine:
    """The service's async engine (one pool per worker process): for writes, in explicit transactions."""
    return cast(AsyncEngine, request.app.state.engine)


async def get_read_engine(request: Request) -> AsyncEngine:
    """The same pool in autocommit mode: a single-statement read needs no BEGIN/ROLLBACK round trips."""
    return cast(AsyncEngine, request.app.state.read_engine)


async def get_outbox_signal(request: Request) -> OutboxSignal:
    """Wakes this process's outbox relays after a commit."""
    return cast(OutboxSignal, request.app.state.outbox_signal)


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
ReadEngineDep = Annotated[AsyncEngine, Depends(get_read_engine)]
OutboxSignalDep = Annotated[OutboxSignal, Depends(get_outbox_signal)]
