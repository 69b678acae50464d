"""The chaos run's table (requests by outcome, unavailability per kill, restarts, lost and duplicated) and JSON."""

from __future__ import annotations

import bisect
import collections
import itertools
from typing import Any

from .chaos_checks import Settling, Verdict
from .chaos_kills import Kill
from .chaos_workload import Attempt, Operation, Workload

WINDOWS = ("none", "service", "postgres", "kafka")
WINDOW_LABELS = {
    "none": "before the first kill",
    "service": "after a service instance kill",
    "postgres": "after a PostgreSQL kill",
    "kafka": "after a Kafka kill",
}
CLASSES = ("2xx", "4xx", "5xx", "no answer")
BACK_TARGET_SECONDS = 5.0
FAILED_TARGET_PERCENT = 1.0


def window_of(at: float, kills: list[Kill]) -> str:
    """The kind of the last kill before `at` (`none` before the first): the window a request falls in."""
    starts = [kill.at for kill in kills]
    index = bisect.bisect_right(starts, at) - 1
    return "none" if index < 0 else kills[index].kind


def request_rows(workload: Workload, kills: list[Kill]) -> dict[str, dict[str, Any]]:
    """Per window: operations by outcome (by start time) and attempts by status class (by end time)."""
    operations: dict[str, list[Operation]] = collections.defaultdict(list)
    attempts: dict[str, list[Attempt]] = collections.defaultdict(list)
    for operation in workload.operations:
        operations[window_of(operation.started, kills)].append(operation)
    for attempt in workload.attempts:
        attempts[window_of(attempt.at, kills)].append(attempt)
    rows: dict[str, dict[str, Any]] = {}
    for window in (*WINDOWS, "all"):
        ops = workload.operations if window == "all" else operations[window]
        tries = workload.attempts if window == "all" else attempts[window]
        outcomes = collections.Counter(op.outcome for op in ops)
        classes = collections.Counter(attempt.status_class for attempt in tries)
        rows[window] = {
            "operations": len(ops),
            **{outcome: outcomes[outcome] for outcome in ("ok", "retried-ok", "failed")},
            "failed_percent": 100.0 * outcomes["failed"] / len(ops) if ops else 0.0,
            "attempts": len(tries),
            **{cls: classes[cls] for cls in CLASSES},
            "statuses": dict(sorted(collections.Counter(attempt.status for attempt in tries).items())),
        }
    return rows


def kill_rows(workload: Workload, kills: list[Kill], run_end: float) -> list[dict[str, Any]]:
    """Per kill: the program, when, how long until RUNNING and serving, the longest gap between successes."""
    successes = sorted(a.at for a in workload.attempts if 200 <= a.status < 300)
    rows = []
    for number, kill in enumerate(kills):
        end = kills[number + 1].at if number + 1 < len(kills) else run_end
        points = [kill.at, *(t for t in successes if kill.at < t <= end)]
        following = bisect.bisect_right(successes, end)
        if len(points) == 1 and following < len(successes):
            points.append(successes[following])  # no success before the next kill: the gap runs on past it
        gap = max((b - a for a, b in itertools.pairwise(points)), default=end - kill.at)
        failed = sum(1 for a in workload.attempts if kill.at < a.at <= end and (a.status == 0 or a.status >= 500))
        rows.append(
            {
                "program": kill.program,
                "kind": kill.kind,
                "at_seconds": kill.at,
                "running_after_seconds": kill.running_after,
                "serving_after_seconds": kill.serving_after,
                "longest_gap_seconds": gap,
                "failed_attempts": failed,
            }
        )
    return rows


def timeline(workload: Workload, started: float) -> list[dict[str, int]]:
    """Per second of the run: attempts by status class (where the gaps are)."""
    seconds: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for attempt in workload.attempts:
        seconds[int(attempt.at - started)][attempt.status_class] += 1
    return [{"second": s, **seconds[s]} for s in range(max(seconds, default=-1) + 1)]


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def print_report(result: dict[str, Any]) -> None:
    """The table, then what was lost or duplicated and the targets."""
    started = result["started_monotonic"]
    print(f"\n## Chaos run {result['run_id']}: {result['seconds']:.0f}s, {len(result['kills'])} kills\n")
    print("| requests | operations | ok | retried-ok | failed | failed % | attempts | 2xx | 4xx | 5xx | no answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for window, row in result["requests"].items():
        label = WINDOW_LABELS.get(window, "**all**")
        cells = [row["operations"], row["ok"], row["retried-ok"], row["failed"], f"{row['failed_percent']:.2f}"]
        cells += [row["attempts"], *(row[cls] for cls in CLASSES)]
        print(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")
    header = "| kill | at (s) | process | RUNNING again after (s) | serving after (s) | longest gap in successes (s) |"
    print(f"\n{header} 5xx / no answer until next kill |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for number, kill in enumerate(result["kills"], 1):
        print(
            f"| {number} | {kill['at_seconds'] - started:.0f} | {kill['program']} "
            f"| {_seconds(kill['running_after_seconds'])} | {_seconds(kill['serving_after_seconds'])} "
            f"| {kill['longest_gap_seconds']:.1f} | {kill['failed_attempts']} |"
        )
    print("\n| process | killed | restarts (supervisor) | state now |")
    print("|---|---:|---:|---|")
    for name, row in result["processes"].items():
        print(f"| {name} | {row['killed']} | {row['restarts']} | {row['state']} |")
    checks = result["checks"]
    print(
        f"\npatients: {checks['acknowledged']} creates acknowledged ({checks['deleted']} of them deleted), "
        f"{checks['created_unacknowledged']} unacknowledged creates that did happen (once each); "
        f"events: {checks['events']} in the outbox, {checks['events_counted']} counted by analytics; "
        f"settled in {result['settle']['seconds']:.1f}s"
    )
    for word in ("lost", "duplicated"):
        items = checks[word]
        print(f"{word}: {len(items)}")
        for item in items[:20]:
            print(f"  - {item}")
        if len(items) > 20:
            print(f"  ... and {len(items) - 20} more (see the JSON file)")
    for item in result["settle"]["waiting_for"]:
        print(f"not settled: {item}")
    print("\ntargets:")
    for line in result["targets"]:
        print(f"  {line}")


def build_result(
    *,
    run_id: str,
    seconds: float,
    started: float,
    run_end: float,
    workload: Workload,
    kills: list[Kill],
    restarts: dict[str, int],
    states: dict[str, str],
    settling: Settling,
    checks: Verdict,
) -> dict[str, Any]:
    """Everything the table shows, as JSON-ready data (times relative to `started` where it matters)."""
    killed = collections.Counter(kill.program for kill in kills)
    requests = request_rows(workload, kills)
    kill_table = kill_rows(workload, kills, run_end)
    backs = [kill.running_after for kill in kills]
    slowest = max((b for b in backs if b is not None), default=0.0)
    service_failed = requests["service"]["failed_percent"]
    targets = [
        f"0 lost: {'met' if not checks.lost else 'NOT met'} ({len(checks.lost)})",
        f"0 duplicated: {'met' if not checks.duplicated else 'NOT met'} ({len(checks.duplicated)})",
        f"every killed process RUNNING again within {BACK_TARGET_SECONDS:.0f}s: "
        + ("met" if None not in backs and slowest <= BACK_TARGET_SECONDS else "NOT met")
        + f" (slowest {slowest:.1f}s{', some never' if None in backs else ''})",
        f"<= {FAILED_TARGET_PERCENT:.0f}% of operations failing after service instance kills: "
        + ("met" if service_failed <= FAILED_TARGET_PERCENT else "NOT met")
        + f" ({service_failed:.2f}% of {requests['service']['operations']}; "
        + f"after PostgreSQL kills {requests['postgres']['failed_percent']:.2f}%, "
        + f"after Kafka kills {requests['kafka']['failed_percent']:.2f}%)",
        "every process running at the end: "
        + ("met" if all(s == "RUNNING" for s in states.values()) else "NOT met")
        + f" ({', '.join(f'{n} {s}' for n, s in states.items() if s != 'RUNNING') or 'all RUNNING'})",
    ]
    return {
        "run_id": run_id,
        "timeline": timeline(workload, started),
        "seconds": seconds,
        "started_monotonic": started,
        "requests": requests,
        "kills": kill_table,
        "processes": {
            name: {"killed": killed[name], "restarts": restarts.get(name, 0), "state": state}
            for name, state in states.items()
        },
        "settle": {"seconds": settling.seconds, "waiting_for": settling.waiting_for},
        "checks": {
            "lost": checks.lost,
            "duplicated": checks.duplicated,
            "created_unacknowledged": checks.created_unacknowledged,
            "acknowledged": checks.acknowledged,
            "deleted": checks.deleted,
            "events": checks.events,
            "events_counted": checks.events_counted,
        },
        "all_running": all(s == "RUNNING" for s in states.values()),
        "targets": targets,
    }
