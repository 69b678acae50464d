"""After the chaos run: wait (bounded) for the stack to settle, then check what the databases hold.

Settled: every supervised program RUNNING, every instance's /health 200, patient-service's outbox without
pending rows, analytics-service has processed every event of this run's patients, billing-service has the
account of each of them in the state it should have. Then, per patient the run tried to create (by its
marker e-mail), whether what was acknowledged is there exactly once, and whether every event was counted once.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import time
from dataclasses import dataclass, field

import aiohttp

from devstack.stack import Stack

from .chaos_workload import Workload
from .database import connected
from .endpoints import Endpoints
from .progress import log

EVENT_TYPES = ("PATIENT_CREATED", "PATIENT_UPDATED", "PATIENT_DELETED")


@dataclass(frozen=True)
class Baseline:
    """analytics-service before the run: its database clock and its counters per event type."""

    db_time: dt.datetime
    counts: dict[str, int]


async def baseline(endpoints: Endpoints) -> Baseline:
    """Read before the first request of the run."""
    async with connected(endpoints.database("analytics_service")) as analytics:
        rows = await analytics.fetch("SELECT event_type, count FROM event_counts")
        return Baseline(await analytics.fetchval("SELECT now()"), {str(r[0]): int(r[1]) for r in rows})


@dataclass
class Facts:
    """What the databases hold about this run's patients."""

    rows: dict[str, list[tuple[str, str]]]  # marker e-mail -> [(id, name)] in patient-service
    events: dict[str, tuple[str, str, str]]  # event id -> (patient id, event type, outbox state)
    pending: int  # outbox rows of any patient still PENDING (both destinations)
    processed: set[str]  # event ids of `events` analytics has processed
    accounts: dict[str, str]  # patient id -> billing account status
    counted: dict[str, int]  # event type -> analytics' counter now
    processed_since: dict[str, int]  # event type -> events analytics processed since the baseline


async def collect(endpoints: Endpoints, workload: Workload, since: dt.datetime) -> Facts:
    """One look at the three databases."""
    pattern = f"chaos-{workload.run_id}-%"
    async with connected(endpoints.database("patient_service")) as patient_db:
        found = await patient_db.fetch(
            "SELECT id::text, lower(email) AS email, name FROM patients WHERE lower(email) LIKE $1", pattern
        )
        rows: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for row in found:
            rows[str(row["email"])].append((str(row["id"]), str(row["name"])))
        ids = sorted({pid for p in workload.patients.values() for pid in p.ids} | {r["id"] for r in found})
        event_rows = await patient_db.fetch(
            "SELECT event_id::text, aggregate_id::text, event_type, state FROM outbox "
            "WHERE destination = 'patient-event' AND aggregate_id = ANY($1::uuid[])",
            ids,
        )
        pending = int(await patient_db.fetchval("SELECT count(*) FROM outbox WHERE state = 'PENDING'"))
    events = {str(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in event_rows}
    async with connected(endpoints.database("analytics_service")) as analytics:
        processed = {
            str(r[0])
            for r in await analytics.fetch(
                "SELECT event_id FROM processed_events WHERE event_id = ANY($1::text[])", list(events)
            )
        }
        counted = {str(r[0]): int(r[1]) for r in await analytics.fetch("SELECT event_type, count FROM event_counts")}
        since_rows = await analytics.fetch(
            "SELECT event_type, count(*) FROM processed_events WHERE processed_at >= $1 "
            "AND event_type = ANY($2::text[]) GROUP BY event_type",
            since,
            list(EVENT_TYPES),
        )
    async with connected(endpoints.database("billing_service")) as billing:
        accounts = {
            str(r[0]): str(r[1])
            for r in await billing.fetch(
                "SELECT patient_id, status FROM billing_accounts WHERE patient_id = ANY($1::text[])", ids
            )
        }
    return Facts(
        rows=dict(rows),
        events=events,
        pending=pending,
        processed=processed,
        accounts=accounts,
        counted=counted,
        processed_since={str(r[0]): int(r[1]) for r in since_rows},
    )


def expected_accounts(workload: Workload, facts: Facts) -> dict[str, str]:
    """Patient id -> the account status billing should have: ACTIVE while the patient exists, else CLOSED."""
    expected: dict[str, str] = {}
    for patient in workload.patients.values():
        existing = facts.rows.get(patient.email, [])
        for patient_id, _name in existing:
            expected[patient_id] = "ACTIVE"
        if patient.id is not None and not existing and (patient.deleted or patient.delete_unsure):
            expected[patient.id] = "CLOSED"
    return expected


@dataclass
class Settling:
    """How long settling took and what was still missing when it gave up (empty: settled)."""

    seconds: float
    waiting_for: list[str] = field(default_factory=list)
    facts: Facts | None = None


async def settle(
    stack: Stack, endpoints: Endpoints, workload: Workload, base: Baseline, limit_seconds: float
) -> Settling:
    """Poll until everything is back and delivered, at most `limit_seconds`."""
    started = time.monotonic()
    waiting: list[str] = ["nothing checked yet"]
    facts: Facts | None = None
    last_said = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        while time.monotonic() - started < limit_seconds:
            waiting = []
            statuses = await asyncio.to_thread(stack.supervisor.processes)
            waiting += [f"{p.name} is {p.state}" for p in statuses if p.state != "RUNNING"]
            waiting += await _unhealthy(session, stack)
            try:
                facts = await collect(endpoints, workload, base.db_time)
            except Exception as exc:  # PostgreSQL may still be recovering, or a pool was just killed
                waiting.append(f"databases: {type(exc).__name__}")
            else:
                if facts.pending:
                    waiting.append(f"{facts.pending} outbox rows pending")
                unprocessed = len(set(facts.events) - facts.processed)
                if unprocessed:
                    waiting.append(f"analytics has {unprocessed} events of this run to process")
                accounts = expected_accounts(workload, facts)
                behind = sum(1 for pid, status in accounts.items() if facts.accounts.get(pid) != status)
                if behind:
                    waiting.append(f"{behind} billing accounts not (yet) in their expected state")
            if not waiting:
                return Settling(time.monotonic() - started, [], facts)
            said = "; ".join(waiting)
            if said != last_said:
                log(f"settling: {said}")
                last_said = said
            await asyncio.sleep(1.0)
    return Settling(time.monotonic() - started, waiting, facts)


async def _unhealthy(session: aiohttp.ClientSession, stack: Stack) -> list[str]:
    problems = []
    for service in stack.available():
        for instance in stack.instances(service):
            try:
                async with session.get(instance.url + service.health_path) as response:
                    if response.status != 200:
                        problems.append(f"{instance.name} /health {response.status}")
            except (aiohttp.ClientError, TimeoutError, OSError):
                problems.append(f"{instance.name} /health does not answer")
    return problems


@dataclass
class Verdict:
    """The end of the run: each list names what went wrong, one line per patient or event."""

    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    created_unacknowledged: int = 0  # creates never acknowledged that did happen (allowed: once)
    acknowledged: int = 0
    deleted: int = 0
    events: int = 0
    events_counted: int = 0


def verdict(workload: Workload, facts: Facts, base: Baseline) -> Verdict:
    """Acknowledged creates there once (or gone when deleted), one id per key, accounts, events once."""
    result = Verdict()
    for patient in workload.patients.values():
        rows = facts.rows.get(patient.email, [])
        if len(rows) > 1:
            result.duplicated.append(f"{patient.email}: {len(rows)} patients ({', '.join(r[0] for r in rows)})")
        if len(set(patient.ids)) > 1:
            result.duplicated.append(f"key {patient.key} answered ids {sorted(set(patient.ids))}")
        if not patient.acknowledged:
            result.created_unacknowledged += 1 if rows else 0
            continue
        result.acknowledged += 1
        if patient.deleted:
            result.deleted += 1
            if rows:
                result.lost.append(f"{patient.email}: delete acknowledged, patient still there")
        elif not rows and not patient.delete_unsure:
            result.lost.append(f"{patient.email}: create acknowledged (id {patient.id}), patient missing")
        elif rows and rows[0][0] != patient.id:
            result.duplicated.append(f"{patient.email}: acknowledged as {patient.id}, stored as {rows[0][0]}")
        elif rows and rows[0][1] not in patient.names:
            result.lost.append(f"{patient.email}: name {rows[0][1]!r}, acknowledged update was {patient.names[0]!r}")
    for patient_id, status in expected_accounts(workload, facts).items():
        actual = facts.accounts.get(patient_id)
        if actual != status:
            result.lost.append(f"billing account of {patient_id}: {actual or 'none'}, expected {status}")
    per_patient = collections.Counter((pid, kind) for pid, kind, _state in facts.events.values())
    for (patient_id, kind), number in sorted(per_patient.items()):
        if kind in ("PATIENT_CREATED", "PATIENT_DELETED") and number > 1:
            result.duplicated.append(f"{number} {kind} events for patient {patient_id}")
    result.events = len(facts.events)
    result.events_counted = len(facts.processed)
    for event_id, (patient_id, kind, state) in sorted(facts.events.items()):
        if event_id not in facts.processed:
            result.lost.append(f"event {event_id} ({kind} of {patient_id}, outbox {state}) not counted by analytics")
    for kind in EVENT_TYPES:
        delta = facts.counted.get(kind, 0) - base.counts.get(kind, 0)
        processed = facts.processed_since.get(kind, 0)
        if delta > processed:
            result.duplicated.append(f"analytics counted {delta} {kind} for {processed} processed events")
        elif delta < processed:
            result.lost.append(f"analytics counted {delta} {kind} for {processed} processed events")
    return result
