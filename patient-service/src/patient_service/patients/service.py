"""Patient operations: reads on SQLAlchemy Core, writes that commit the change and its outbox rows together."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncpg import Record
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import ColumnElement, RowMapping, Select, Table, bindparam, delete, func, select, union_all, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from patient_service.audit.context import AuditContext
from patient_service.audit.models import Action, audit_events
from patient_service.audit.service import AUDIT_COLUMNS, record_in
from patient_service.outbox.events import EventType, billing_close_row, billing_request_row, patient_event_row
from patient_service.outbox.models import outbox
from patient_service.patients.models import EMAIL_UNIQUE_INDEX, idempotency_keys, patients
from patient_service.patients.preconditions import PRECONDITION_FAILED, IfMatch, PreconditionFailed, merge_patch
from patient_service.patients.schemas import PatientCreate, PatientUpdate, to_wire, utc_today
from patient_service.patients.search import PatientQuery, search_statements
from pm_common import idempotency
from pm_common.database import DriverRead, autocommit
from pm_common.http import DomainError, NotFoundError
from pm_common.idempotency import RetryKey

log = logging.getLogger(__name__)

EMAIL_TAKEN = "Email address already exists"
NOT_FOUND = "Patient not found"


@dataclass(frozen=True, slots=True)
class Versioned:
    """A patient in its wire shape and its version (the ETag; FHIR's meta.versionId)."""

    patient: dict[str, str]
    version: int


def _versioned(row: RowMapping | Record) -> Versioned:
    return Versioned(to_wire(row), int(row["version"]))


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


async def search_patients(engine: AsyncEngine, *, query: PatientQuery) -> tuple[list[Versioned], int]:
    """The patients matching a query, in its order, all of them or one page; plus how many match in all."""
    statements, values = search_statements(query)
    rows = await statements.rows.all(engine, values)
    if not query.paged:
        return [_versioned(row) for row in rows], len(rows)
    total = (await statements.count.all(engine, values))[0][0]
    return [_versioned(row) for row in rows], int(total)


# Built and compiled once, run on the driver: the hottest read (bench/README.md, "The second pass").
_PATIENT_BY_ID = DriverRead(select(patients).where(patients.c.id == bindparam("id")))


async def get_patient(engine: AsyncEngine, *, patient_id: uuid.UUID) -> Versioned:
    """One patient by id and its version, or NotFoundError."""
    row = await _PATIENT_BY_ID.first(engine, {"id": patient_id})
    if row is None:
        raise NotFoundError(NOT_FOUND)
    return _versioned(row)


def _create_statement() -> Select[Any]:
    """INSERT the patient and, only when that inserted a row, its two outbox rows and its audit record; return
    the row. One statement, so one round trip: in autocommit it commits on its own, all of it or nothing.

    ON CONFLICT on the lower(email) index: a taken email is an ordinary outcome (no row), also under races.
    Built once, values as parameters (`:patient_*`, `:event_*`, `:billing_*`, `:audit_*`).
    """
    new = (
        insert(patients)
        .values({name: bindparam(f"patient_{name}", type_=patients.c[name].type) for name in _PATIENT_VALUES})
        .values(updated_at=bindparam("patient_created_at", type_=patients.c.created_at.type))
        .on_conflict_do_nothing(index_elements=[func.lower(patients.c.email)])
        .returning(*patients.c)
        .cte("new")
    )

    def parameters_and(table: Table, prefix: str, columns: list[str], *, from_new: str) -> Select[Any]:
        # One row per row of `new` (none when the email was taken): the parameters, and the patient's id.
        return select(
            *(
                new.c.id if name == from_new else bindparam(f"{prefix}_{name}", type_=table.c[name].type)
                for name in columns
            )
        )

    events = (
        insert(outbox)
        .from_select(
            _OUTBOX_VALUES,
            union_all(
                parameters_and(outbox, "event", _OUTBOX_VALUES, from_new="aggregate_id"),
                parameters_and(outbox, "billing", _OUTBOX_VALUES, from_new="aggregate_id"),
            ),
        )
        .cte("events")
    )
    record = (
        insert(audit_events)
        .from_select(AUDIT_COLUMNS, parameters_and(audit_events, "audit", AUDIT_COLUMNS, from_new="patient_id"))
        .cte("record")
    )
    return select(new).add_cte(events, record)


_PATIENT_VALUES = ["id", "name", "email", "address", "date_of_birth", "registered_date", "created_at"]
# created_at too: the patient's, its event's occurred_at and its outbox rows' are one instant, as they were
# when all three came from the transaction's now().
_OUTBOX_VALUES = ["event_id", "destination", "aggregate_id", "event_type", "payload", "trace_context", "created_at"]
# Measured (bench/README.md, "The third pass"): BEGIN, three INSERTs and COMMIT cost five round trips, each
# ~0.1 ms of CPU in send() alone on this machine, plus three SQLAlchemy executions.
_CREATE = _create_statement()


def _prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{name}": value for name, value in values.items()}


async def create_patient(
    engine: AsyncEngine, *, data: PatientCreate, audit: AuditContext, retry: RetryKey | None = None
) -> dict[str, str]:
    """Insert the patient, its PATIENT_CREATED event, its billing-account request and the audit record in one
    statement; with an Idempotency-Key, in one transaction with the key (and the answer a repeat replays)."""
    created_at = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": data.name,
        "email": data.email,
        "address": data.address,
        "date_of_birth": data.date_of_birth,
        "registered_date": data.registered_date or utc_today(),
        "created_at": created_at,
    }
    record = audit.event(Action.CREATE, patient_id=values["id"], status=201)
    parameters = _prefixed("patient", values) | _prefixed("audit", record.values())
    outbox_rows = {
        "event": patient_event_row(event_type=EventType.PATIENT_CREATED, patient=values, occurred_at=created_at),
        "billing": billing_request_row(patient=values),
    }
    for prefix, outbox_row in outbox_rows.items():
        parameters |= _prefixed(prefix, {**outbox_row, "created_at": created_at})
    async with engine.begin() if retry is not None else autocommit(engine) as connection:
        if retry is not None:
            await idempotency.guard(connection, idempotency_keys, retry)  # a repeat: Replayed, nothing created
        row = (await connection.execute(_CREATE, parameters)).mappings().first()
        if row is None:
            raise _email_taken()
        created = to_wire(row)
        if retry is not None:
            await idempotency.complete(connection, idempotency_keys, retry, status=201, body=created)
    audit.recorded = True
    log.info("patient created", extra={"patient_id": str(row["id"])})
    return created


async def _missing_or_changed(connection: AsyncConnection, patient_id: uuid.UUID) -> DomainError:
    """After a write matched no row under If-Match: 412 when the patient exists (another version), else 404."""
    exists = (await connection.execute(select(patients.c.id).where(patients.c.id == patient_id))).first()
    return PreconditionFailed(PRECONDITION_FAILED) if exists else NotFoundError(NOT_FOUND)


def _matching(patient_id: uuid.UUID, if_match: IfMatch | None) -> list[ColumnElement[bool]]:
    """WHERE of a write to one patient: its id and, under If-Match, one of the versions it names."""
    where = [patients.c.id == patient_id]
    if if_match is not None and not if_match.any:
        where.append(patients.c.version.in_(sorted(if_match.versions)))
    return where


async def _replace(
    connection: AsyncConnection,
    *,
    patient_id: uuid.UUID,
    data: PatientUpdate,
    audit: AuditContext,
    if_match: IfMatch | None,
) -> RowMapping:
    """UPDATE (version + 1), its PATIENT_UPDATED event and its audit record, in the caller's transaction."""
    statement = (
        update(patients)
        .where(*_matching(patient_id, if_match))
        .values(
            name=data.name,
            email=data.email,
            address=data.address,
            date_of_birth=data.date_of_birth,
            updated_at=func.now(),
            version=patients.c.version + 1,
        )
        .returning(*patients.c)
    )
    row = (await connection.execute(statement)).mappings().first()
    if row is None:
        raise await _missing_or_changed(connection, patient_id)
    await connection.execute(
        outbox.insert().values(
            patient_event_row(event_type=EventType.PATIENT_UPDATED, patient=row, occurred_at=row["updated_at"])
        )
    )
    await _audit(connection, audit, Action.UPDATE, patient_id=patient_id, status=200)
    return row


async def update_patient(
    engine: AsyncEngine,
    *,
    patient_id: uuid.UUID,
    data: PatientUpdate,
    audit: AuditContext,
    if_match: IfMatch | None = None,
) -> Versioned:
    """Replace a patient's fields (not registeredDate), queue PATIENT_UPDATED and record it, in one transaction.

    With If-Match, only when the patient still has one of its versions (412 otherwise)."""
    try:
        async with engine.begin() as connection:
            row = await _replace(connection, patient_id=patient_id, data=data, audit=audit, if_match=if_match)
    except IntegrityError as exc:
        if _is_email_conflict(exc):
            raise _email_taken() from None
        raise
    log.info("patient updated", extra={"patient_id": str(patient_id)})
    return _versioned(row)


async def patch_patient(
    engine: AsyncEngine,
    *,
    patient_id: uuid.UUID,
    patch: dict[str, Any],
    audit: AuditContext,
    if_match: IfMatch | None = None,
) -> Versioned:
    """Apply a JSON Merge Patch (RFC 7396) to the patient's wire shape and store the result as a PUT would.

    The row is locked while the patch is merged and validated, so no other write slips in between; the merged
    result gets PUT's validation (400 with the field map), event, audit record and If-Match rule."""
    try:
        async with engine.begin() as connection:
            current = (
                (await connection.execute(select(patients).where(patients.c.id == patient_id).with_for_update()))
                .mappings()
                .first()
            )
            if current is None:
                raise NotFoundError(NOT_FOUND)
            if if_match is not None and not if_match.matches(int(current["version"])):
                raise PreconditionFailed(PRECONDITION_FAILED)
            merged = merge_patch(to_wire(current), patch)
            try:
                data = PatientUpdate.model_validate(merged)
            except ValidationError as exc:
                # The errors of the merged body, located in the body as a PUT's are (400 `{field: message}`).
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
            row = await _replace(connection, patient_id=patient_id, data=data, audit=audit, if_match=None)
    except IntegrityError as exc:
        if _is_email_conflict(exc):
            raise _email_taken() from None
        raise
    log.info("patient patched", extra={"patient_id": str(patient_id)})
    return _versioned(row)


async def delete_patient(
    engine: AsyncEngine, *, patient_id: uuid.UUID, audit: AuditContext, if_match: IfMatch | None = None
) -> None:
    """Delete a patient, queue PATIENT_DELETED (the id only) and the closing of its billing account, and erase
    what parked outbox rows still hold of it, in one transaction. With If-Match, only a version it names."""
    statement = (
        delete(patients)
        .where(*_matching(patient_id, if_match))
        .returning(patients.c.id, func.now().label("occurred_at"))
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).mappings().first()
        if row is None:
            raise await _missing_or_changed(connection, patient_id)
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
