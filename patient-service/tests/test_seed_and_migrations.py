"""Migrations match the models; the 15 demo patients are inserted once, without events."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.db import metadata
from patient_service.seed import demo_patients, seed_demo_patients
from pm_common.database import schema_drift

from .conftest import running_service, service_settings

# First and last rows of the reference data (seed-patients.csv beside the original's description).
FIRST_SEED = ("123e4567-e89b-12d3-a456-426614174000", "john.doe@example.com", "1985-06-15", "2024-01-10")
LAST_SEED = ("223e4567-e89b-12d3-a456-426614174014", "isabella.walker@example.com", "1987-10-17", "2024-03-29")


async def test_migrations_match_the_models(migrated_url: str) -> None:
    assert await schema_drift(migrated_url, metadata) == []


async def test_email_uniqueness_is_a_unique_index_on_lower_email(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        definition = (
            await connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_patients_email_lower'")
            )
        ).scalar_one()
    assert (
        definition
        == "CREATE UNIQUE INDEX uq_patients_email_lower ON public.patients USING btree (lower((email)::text))"
    )


def test_the_packaged_seed_is_the_reference_data() -> None:
    rows = demo_patients()
    assert len(rows) == 15
    assert len({row["email"] for row in rows}) == 15

    def key(row: dict[str, object]) -> tuple[str, ...]:
        return (str(row["id"]), str(row["email"]), str(row["date_of_birth"]), str(row["registered_date"]))

    assert (key(rows[0]), key(rows[-1])) == (FIRST_SEED, LAST_SEED)


async def test_seed_is_idempotent_and_emits_nothing(engine: AsyncEngine, migrated_url: str) -> None:
    assert await seed_demo_patients(engine=engine) == 15
    assert await seed_demo_patients(engine=engine) == 0
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM patients"))).scalar_one() == 15
        assert (await connection.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0
    async with running_service(service_settings(migrated_url, outbox_relay_enabled=False)) as service:
        john = (await service.http.get("/patients/123e4567-e89b-12d3-a456-426614174000")).json()
        assert john == {
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "name": "John Doe",
            "email": "john.doe@example.com",
            "address": "123 Main St, Springfield",
            "dateOfBirth": "1985-06-15",
            "registeredDate": "2024-01-10",
        }
        assert len((await service.http.get("/patients")).json()) == 15


async def test_seed_keeps_a_registered_patient_with_a_demo_email(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO patients (id, name, email, address, date_of_birth, registered_date) "
                "VALUES (:id, 'Real Person', 'JANE.SMITH@example.com', 'Somewhere', '1990-01-01', '2025-01-01')"
            ),
            {"id": uuid.uuid4()},
        )
    assert await seed_demo_patients(engine=engine) == 14
    async with engine.connect() as connection:
        names = (
            await connection.execute(text("SELECT name FROM patients WHERE lower(email) = 'jane.smith@example.com'"))
        ).all()
    assert [n.name for n in names] == ["Real Person"]
