"""The 15 demo patients of the original (dev/test data), inserted idempotently and without events."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from datetime import date
from importlib.resources import files
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.patients.models import patients

log = logging.getLogger(__name__)


def demo_patients() -> list[dict[str, Any]]:
    """The rows of seed_patients.csv (shipped inside the package) as table values."""
    text = files("patient_service").joinpath("seed_patients.csv").read_text(encoding="utf-8")
    return [
        {
            "id": uuid.UUID(row["id"]),
            "name": row["name"],
            "email": row["email"],
            "address": row["address"],
            "date_of_birth": date.fromisoformat(row["date_of_birth"]),
            "registered_date": date.fromisoformat(row["registered_date"]),
        }
        for row in csv.DictReader(io.StringIO(text))
    ]


async def seed_demo_patients(*, engine: AsyncEngine) -> int:
    """Insert the demo patients that are missing (by id or email); return how many were inserted.

    No outbox rows: these are demo data, not registrations, so no PATIENT_CREATED event and no billing
    account is produced for them.
    """
    rows = demo_patients()
    async with engine.begin() as connection:
        before = (await connection.execute(select(func.count()).select_from(patients))).scalar_one()
        # No conflict target: an existing row with the same id or the same email (any case) is kept.
        await connection.execute(insert(patients).values(rows).on_conflict_do_nothing())
        after = (await connection.execute(select(func.count()).select_from(patients))).scalar_one()
    inserted = int(after) - int(before)
    log.info("demo patients seeded", extra={"inserted": inserted, "known": len(rows)})
    return inserted
