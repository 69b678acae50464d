"""Annotated dependency aliases for the views (what the lifespan put on app.state)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.audit.context import AuditContext
from patient_service.audit.service import AuditWriter
from patient_service.config import Settings
from patient_service.outbox.relay import OutboxSignal
from pm_common.access import Permission
from pm_common.app import from_state
from pm_common.auth import require
from pm_common.tokens import Identity

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
# For writes, in explicit transactions.
EngineDep = Annotated[AsyncEngine, Depends(from_state("engine", AsyncEngine))]
# The same pool in autocommit mode: a single-statement read needs no BEGIN/ROLLBACK round trips.
ReadEngineDep = Annotated[AsyncEngine, Depends(from_state("read_engine", AsyncEngine))]
# Wakes this process's outbox relays after a commit.
OutboxSignalDep = Annotated[OutboxSignal, Depends(from_state("outbox_signal", OutboxSignal))]


async def _audit_context(request: Request) -> AuditContext:
    context: AuditContext = request.state.audit
    return context


# The caller, checked against the permission table (401 without a valid token, 403 for a role that may not).
ReaderDep = Annotated[Identity, Depends(require(Permission.READ_PATIENTS))]
WriterDep = Annotated[Identity, Depends(require(Permission.WRITE_PATIENTS))]
DeleterDep = Annotated[Identity, Depends(require(Permission.DELETE_PATIENTS))]
AuditorDep = Annotated[Identity, Depends(require(Permission.READ_AUDIT))]
RecorderDep = Annotated[Identity, Depends(require(Permission.RECORD_AUDIT))]
AuditWriterDep = Annotated[AuditWriter, Depends(from_state("audit_writer", AuditWriter))]
# This request's audit context (AuditMiddleware made it): writes record themselves through it.
AuditDep = Annotated[AuditContext, Depends(_audit_context)]
