"""Emails are unique without regard to case, decided by the database under real concurrency."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import running_service, service_settings


async def test_parallel_creates_with_one_email_give_exactly_one_201(migrated_url: str, engine: AsyncEngine) -> None:
    base = f"race-{uuid.uuid4().hex[:8]}@example.com"
    variants = [base, base.upper(), base.capitalize(), *([base] * 7), *([base.upper()] * 5)]
    settings = service_settings(migrated_url, outbox_relay_enabled=False, database_pool_size=20)
    async with running_service(settings) as service:
        bodies = [
            {"name": f"Racer {i}", "email": email, "address": "1 Race Road", "dateOfBirth": "1990-01-01"}
            for i, email in enumerate(variants)
        ]
        responses = await asyncio.gather(*(service.http.post("/patients", json=body) for body in bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * (len(variants) - 1)
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"message": "Email address already exists"}
    winner = next(r.json() for r in responses if r.status_code == 201)
    async with engine.connect() as connection:
        patients = (
            await connection.execute(text("SELECT id FROM patients WHERE lower(email) = :e"), {"e": base})
        ).all()
        outbox = (await connection.execute(text("SELECT aggregate_id, event_type FROM outbox"))).all()
    assert [str(p.id) for p in patients] == [winner["id"]]
    # Losers left nothing behind: only the winner's event and billing request exist.
    assert sorted((str(r.aggregate_id), r.event_type) for r in outbox) == [
        (winner["id"], "BILLING_ACCOUNT_REQUESTED"),
        (winner["id"], "PATIENT_CREATED"),
    ]


async def test_parallel_updates_to_one_email_give_exactly_one_200(migrated_url: str) -> None:
    target = f"wanted-{uuid.uuid4().hex[:8]}@example.com"
    settings = service_settings(migrated_url, outbox_relay_enabled=False)
    async with running_service(settings) as service:
        patients = [await service.create() for _ in range(6)]
        responses = await asyncio.gather(
            *(
                service.http.put(
                    f"/patients/{p['id']}",
                    json={
                        "name": "N",
                        "email": target.upper() if i % 2 else target,
                        "address": "A",
                        "dateOfBirth": "1990-01-01",
                    },
                )
                for i, p in enumerate(patients)
            )
        )
    assert sorted(r.status_code for r in responses) == [200] + [400] * 5
    assert all(r.json() == {"message": "Email address already exists"} for r in responses if r.status_code == 400)
