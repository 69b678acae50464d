"""Dependencies of the routers: what the lifespan put on app.state, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.outbox.relay import OutboxSignal


def get_engine(request: Request) -> AsyncEngine:
    """The service's async engine (one pool per worker process)."""
    return cast(AsyncEngine, request.app.state.engine)


def get_outbox_signal(request: Request) -> OutboxSignal:
    """Wakes this process's outbox relays after a commit."""
    return cast(OutboxSignal, request.app.state.outbox_signal)


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
OutboxSignalDep = Annotated[OutboxSignal, Depends(get_outbox_signal)]
