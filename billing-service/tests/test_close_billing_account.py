"""CloseBillingAccount: status CLOSED, the stored name and email erased, idempotent, and final."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from billing_service.accounts.models import billing_accounts
from pm_proto import billing_service_pb2

from .conftest import Billing


async def stored(billing: Billing, patient_id: str) -> tuple[str, str, str]:
    async with billing.engine.connect() as connection:
        row = (
            await connection.execute(
                select(billing_accounts.c.status, billing_accounts.c.name, billing_accounts.c.email).where(
                    billing_accounts.c.patient_id == patient_id
                )
            )
        ).one()
    return row.status, row.name, row.email


async def test_closing_erases_name_and_email_and_keeps_the_account_id(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    created = await billing.stub.CreateBillingAccount(
        billing_service_pb2.BillingRequest(patientId=patient_id, name="Marker Name", email="marker@example.com"),
        timeout=5,
    )
    request = billing_service_pb2.BillingAccountRequest(patientId=patient_id)

    closed = await billing.stub.CloseBillingAccount(request, timeout=5)
    again = await billing.stub.CloseBillingAccount(request, timeout=5)

    assert (closed.accountId, closed.status) == (created.accountId, "CLOSED")
    assert (again.accountId, again.status) == (created.accountId, "CLOSED")
    assert await stored(billing, patient_id) == ("CLOSED", "", "")


async def test_a_create_after_the_close_stores_nothing_and_stays_closed(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    closed = await billing.stub.CloseBillingAccount(
        billing_service_pb2.BillingAccountRequest(patientId=patient_id), timeout=5
    )
    late = await billing.stub.CreateBillingAccount(
        billing_service_pb2.BillingRequest(patientId=patient_id, name="Late Name", email="late@example.com"), timeout=5
    )

    assert (late.accountId, late.status) == (closed.accountId, "CLOSED")
    assert await stored(billing, patient_id) == ("CLOSED", "", "")
