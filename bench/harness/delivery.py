"""The end-to-end check: every patient created during the bench is counted by analytics and billed."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from .database import connected
from .endpoints import Endpoints
from .figures import DeliveryCheck, Skipped
from .progress import log


def check_delivery(
    endpoints: Endpoints, started_db_time: dt.datetime | None, timeout_seconds: float = 120.0
) -> DeliveryCheck | Skipped:
    """Every patient created during the bench has its event counted by analytics and a billing account."""
    if not endpoints.postgres or started_db_time is None:
        return {"skipped": "no database access"}
    log("checking that analytics counted, and billing-service has an account for, every patient created")
    started = time.monotonic()
    while True:
        result = asyncio.run(_delivery(endpoints, started_db_time))
        if (result["counted"] == result["events"] and result["accounts"] == result["patients"]) or (
            time.monotonic() - started > timeout_seconds
        ):
            break
        time.sleep(1)
    result["ok"] = result["counted"] == result["events"] == result["patients"] == result["accounts"]
    log(
        f"  {result['patients']} patients created: {result['events']} PATIENT_CREATED events, "
        f"{result['counted']} counted by analytics, {result['accounts']} billing accounts"
        + ("" if result["ok"] else "  MISMATCH")
    )
    return result


async def _delivery(endpoints: Endpoints, since: dt.datetime) -> DeliveryCheck:
    async with connected(endpoints.database("patient_service")) as patient_db:
        patient_ids = [
            str(r[0]) for r in await patient_db.fetch("SELECT id FROM patients WHERE created_at >= $1", since)
        ]
        event_ids = [
            str(r[0])
            for r in await patient_db.fetch(
                "SELECT event_id FROM outbox WHERE destination = 'patient-event' "
                "AND event_type = 'PATIENT_CREATED' AND created_at >= $1",
                since,
            )
        ]
    async with connected(endpoints.database("analytics_service")) as analytics_db:
        counted = int(
            await analytics_db.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::text[])", event_ids
            )
        )
    async with connected(endpoints.database("billing_service")) as billing_db:
        accounts = int(
            await billing_db.fetchval(
                "SELECT count(*) FROM billing_accounts WHERE patient_id = ANY($1::text[])", patient_ids
            )
        )
    return {"patients": len(patient_ids), "events": len(event_ids), "counted": counted, "accounts": accounts}
