"""Event lag: from a create's 201 to analytics-service counting its event, split at the relay's claim."""

from __future__ import annotations

import asyncio
import statistics

from .context import BenchContext
from .cpu import CpuWindow, disturbed, load_average
from .database import connected, counted_at
from .endpoints import Endpoints
from .figures import EventLagFigures, LagRound, Percentiles, Skipped
from .outbox import wait_for_relay
from .paced_creates import paced_creates
from .progress import log
from .summary import percentile, rounded


def event_lag(context: BenchContext, rate: int, seconds: int) -> EventLagFigures | Skipped:
    """Creates at a fixed rate; lag = analytics' processed_at minus the time the POST's answer arrived."""
    if not context.endpoints.postgres:
        log("event lag: skipped (no database access: --postgres-url)")
        return {"skipped": "no database access"}
    rounds: list[LagRound] = []
    for round_number in range(1, context.repeat + 1):
        wait_for_relay(context.endpoints.patient, "event lag")
        log(
            f"event lag: {rate} creates/s for {seconds}s, round {round_number}/{context.repeat} "
            f"(load {load_average():.2f})"
        )
        result = _lag_round(context, rate, seconds)
        rounds.append(result)
        log(
            f"  lag p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  max {result['max_ms']} ms; "
            f"counted {result['counted']}/{result['sent']}, {result['achieved_rate_per_s']}/s achieved; "
            f"answer->relay claim p50/p99 {result['answer_to_relay_claim_ms']['p50']}/"
            f"{result['answer_to_relay_claim_ms']['p99']} ms, claim->counted "
            f"{result['relay_claim_to_counted_ms']['p50']}/{result['relay_claim_to_counted_ms']['p99']} ms"
            + ("  (disturbed)" if result["disturbed"] else "")
        )
    # A round with a p99 counted at least one event, so it has a p50 as well.
    complete = [(r["p50_ms"], r["p99_ms"]) for r in rounds if r["p50_ms"] is not None and r["p99_ms"] is not None]
    return {
        "rate_per_s": rate,
        "p50_ms": rounded(statistics.median(p50 for p50, _ in complete)) if complete else None,
        "p99_ms": rounded(statistics.median(p99 for _, p99 in complete)) if complete else None,
        "sent": sum(r["sent"] for r in rounds),
        "counted": sum(r["counted"] for r in rounds),
        "failed": sum(r["failed"] for r in rounds),
        "disturbed_runs": sum(r["disturbed"] for r in rounds),
        "each": rounds,
    }


def _percentiles(sorted_ms: list[float]) -> Percentiles:
    return {"p50": rounded(percentile(sorted_ms, 50)), "p99": rounded(percentile(sorted_ms, 99))}


def _lag_round(context: BenchContext, rate: int, seconds: int) -> LagRound:
    endpoints = context.endpoints
    window = CpuWindow(context.processes)
    window.start()
    answered, failures, achieved = asyncio.run(paced_creates(endpoints.gateway, context.token, rate, seconds))
    cpu = window.stop()
    processed = asyncio.run(counted_at(endpoints.database("analytics_service"), list(answered), timeout_seconds=60.0))
    claimed = asyncio.run(_claimed_at(endpoints, list(answered)))
    lags = sorted((processed[p] - answered[p]) * 1000 for p in answered if p in processed)
    # Where the time goes: POST answer -> the relay's claiming transaction (outbox.sent_at is set with
    # now(), the start of that transaction) -> analytics' counting transaction (processed_at, likewise).
    to_claim = sorted((claimed[p] - answered[p]) * 1000 for p in answered if p in claimed)
    to_count = sorted((processed[p] - claimed[p]) * 1000 for p in processed if p in claimed)
    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": round(achieved, 1),
        "sent": len(answered) + failures,
        "failed": failures,
        "counted": len(lags),
        "p50_ms": rounded(percentile(lags, 50)),
        "p99_ms": rounded(percentile(lags, 99)),
        "max_ms": rounded(lags[-1] if lags else None),
        "answer_to_relay_claim_ms": _percentiles(to_claim),
        "relay_claim_to_counted_ms": _percentiles(to_count),
        "cpu": cpu,
        "disturbed": disturbed(cpu),
    }


async def _claimed_at(endpoints: Endpoints, patient_ids: list[str]) -> dict[str, float]:
    async with connected(endpoints.database("patient_service")) as connection:
        rows = await connection.fetch(
            "SELECT aggregate_id::text AS patient_id, extract(epoch FROM sent_at)::float8 AS at FROM outbox "
            "WHERE destination = 'patient-event' AND event_type = 'PATIENT_CREATED' "
            "AND sent_at IS NOT NULL AND aggregate_id = ANY($1::uuid[])",
            patient_ids,
        )
        return {str(r["patient_id"]): float(r["at"]) for r in rows}
