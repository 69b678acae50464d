"""Patient operations: reads on SQLAlchemy Core, writes that commit the change and its outbox rows together."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import RowMapping, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patient_service.audit.context import AuditContext
from patient_service.audit.models import Action
from patient_service.audit.service import record_in
from patient_service.outbox.events import EventType, billing_close_row, billing_request_row, patient_event_row
from patient_service.outbox.models import outbox
from patient_service.patients.models import EMAIL_UNIQUE_INDEX, patients
from patient_service.patients.schemas import PatientCreate, PatientUpdate, to_wire, utc_today
from pm_common.http import DomainError, NotFoundError

log = logging.getLogger(__name__)

EMAIL_TAKEN = "Email address already exists"
NOT_FOUND = "Patient not found"

T = TypeVar("T")


def _email_taken() -> DomainError:
    return DomainError(EMAIL_TAKEN)


def _is_email_conflict(exc: IntegrityError) -> bool:
    """True when the unique index on lower(email) refused the row (asyncpg's UniqueViolationError)."""
    cause = getattr(exc.orig, "__cause__", None)
    return getattr(cause, "constraint_name", None) == EMAIL_UNIQUE_INDEX


async def _audit(
    connection: AsyncConnection, audit: AuditContext, action: Action, *, patient_id: uuid.UUID, status: int
) -> None:
    """Record a write in its own transaction (the change and its record commit together, or neither)."""
    await record_in(connection, audit.event(action, patient_id=patient_id, status=status))
    audit.recorded = True


async def _read(engine: AsyncEngine, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run a read; once more when the pooled connection turned out to be dead (PostgreSQL restarted).

    The pool does not ping connections before use (DATABASE_POOL_PRE_PING off saves a round trip per
    request). A dropped connection surfaces as a disconnect error that also invalidates the rest of the
    pool, so the second attempt gets a new connection; if PostgreSQL is really down it fails again (503).
    """
    try:
        async with engine.connect() as connection:
            return await query(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection was dropped, retrying the read once", extra={"error": type(exc).__name__})
    async with engine.connect() as connection:
        return await query(connection)


async def list_patients(
    engine: AsyncEngine, *, page: int | None = None, size: int | None = None
) -> tuple[list[dict[str, str]], int]:
    """Patients ordered by (registered_date, id), all of them or one page; plus the total count."""
    query = select(patients).order_by(patients.c.registered_date, patients.c.id)

    async def run(connection: AsyncConnection) -> tuple[list[dict[str, str]], int]:
        if page is None and size is None:
            rows = (await connection.execute(query)).mappings().all()
            return [to_wire(row) for row in rows], len(rows)
        limit = size or 100
        rows = (await connection.execute(query.limit(limit).offset((page or 0) * limit))).mappings().all()
        total = (await connection.execute(select(func.count()).select_from(patients))).scalar_one()
        return [to_wire(row) for row in rows], int(total)

    return await _read(engine, run)


async def get_patient(engine: AsyncEngine, *, patient_id: uuid.UUID) -> dict[str, str]:
    """One patient by id, or NotFoundError."""

    async def run(connection: AsyncConnection) -> RowMapping | None:
        return (await connection.execute(select(patients).where(patients.c.id == patient_id))).mappings().first()

    row = await _read(engine, run)
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return to_wire(row)


async def create_patient(engine: AsyncEngine, *, data: PatientCreate, audit: AuditContext) -> dict[str, str]:
    """Insert the patient, its PATIENT_CREATED event, its billing-account request and the audit record in
    one transaction."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": data.name,
        "email": data.email,
        "address": data.address,
        "date_of_birth": data.date_of_birth,
        "registered_date": data.registered_date or utc_today(),
    }
    # ON CONFLICT on the lower(email) index: a taken email is an ordinary outcome, also under races.
    statement = (
        insert(patients)
        .values(values)
        .on_conflict_do_nothing(index_elements=[func.lower(patients.c.email)])
        .returning(*patients.c)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise _email_taken()
        # Rows as execute() parameters, not .values([...]): a multi-VALUES construct has no cache key, so
        # SQLAlchemy compiled it anew on every create (~6 % of the POST path's CPU in py-spy).
        await connection.execute(
            outbox.insert(),
            [
                patient_event_row(event_type=EventType.PATIENT_CREATED, patient=row, occurred_at=row["created_at"]),
                billing_request_row(patient=row),
            ],
        )
        await _audit(connection, audit, Action.CREATE, patient_id=row["id"], status=201)
    log.info("patient created", extra={"patient_id": str(row["id"])})
    return to_wire(row)


async def update_patient(
    engine: AsyncEngine, *, patient_id: uuid.UUID, data: PatientUpdate, audit: AuditContext
) -> dict[str, str]:
    """Replace a patient's fields (not registeredDate), queue PATIENT_UPDATED and record it, in one transaction."""
    statement = (
        update(patients)
        .where(patients.c.id == patient_id)
        .values(
            name=data.name,
            email=data.email,
            address=data.address,
            date_of_birth=data.date_of_birth,
            updated_at=func.now(),
        )
        .returning(*patients.c)
    )
    try:
        async with engine.begin() as connection:
            row = (await connection.execute(statement)).mappings().first()
            if row is None:
                raise NotFoundError(NOT_FOUND)
            await connection.execute(
                outbox.insert().values(
                    patient_event_row(event_type=EventType.PATIENT_UPDATED, patient=row, occurred_at=row["updated_at"])
                )
            )
            await _audit(connection, audit, Action.UPDATE, patient_id=patient_id, status=200)
    except IntegrityError as exc:
        if _is_email_conflict(exc):
            raise _email_taken() from None
        raise
    log.info("patient updated", extra={"patient_id": str(patient_id)})
    return to_wire(row)


async def delete_patient(engine: AsyncEngine, *, patient_id: uuid.UUID, audit: AuditContext) -> None:
    """Delete a patient, queue PATIENT_DELETED (the id only) and the closing of its billing account, and erase
    what parked outbox rows still hold of it, in one transaction."""
    statement = (
        delete(patients).where(patients.c.id == patient_id).returning(patients.c.id, func.now().label("occurred_at"))
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise NotFoundError(NOT_FOUND)
        await connection.execute(
            outbox.insert(),
            [
                patient_event_row(event_type=EventType.PATIENT_DELETED, patient=row, occurred_at=row["occurred_at"]),
                billing_close_row(patient_id=patient_id),
            ],
        )
        # Pending rows are still delivered (their receivers need them) and erased once sent; parked ones
        # would never be, so they are erased now (a replay of one is refused as invalid and parked again).
        await connection.execute(
            update(outbox)
            .where(outbox.c.aggregate_id == patient_id, outbox.c.state == "PARKED")
            .values(payload=b"", last_error="erased: patient deleted")
        )
        await _audit(connection, audit, Action.DELETE, patient_id=patient_id, status=204)
    log.info("patient deleted", extra={"patient_id": str(patient_id)})
