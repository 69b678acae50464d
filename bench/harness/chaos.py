"""`make chaos`: a steady client workload through the gateway while a random supervised process gets kill -9
every few seconds; then settle and check that nothing acknowledged was lost and nothing happened twice."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.cli import default_stack
from devstack.stack import Stack

from .chaos_checks import Facts, Settling, baseline, collect, settle, verdict
from .chaos_kills import Killer
from .chaos_report import build_result, print_report
from .chaos_workload import Workload
from .endpoints import Endpoints, require_loopback
from .preflight import preflight
from .progress import log


@dataclass(frozen=True)
class ChaosSettings:
    """How long, how hard, how often; every loop of the run is bounded by these."""

    seconds: float = 180.0
    interval: float = 10.0  # seconds between kills
    rate: float = 15.0  # first tries per second, all clients together
    clients: int = 4
    grace_seconds: float = 30.0  # operations still retrying when the run ends get this long (no kills then)
    settle_seconds: float = 120.0
    request_timeout: float = 5.0
    seed: int = 0
    email: str = "testuser@test.com"
    password: str = "password123"  # noqa: S105  the contract's demo user (dev/test seed data)


def run_chaos(stack: Stack, settings: ChaosSettings, output: Path | None = None) -> dict[str, Any]:
    """The whole run against `stack`; the result (also written to `output` as JSON) and the table printed."""
    endpoints = Endpoints.of(stack)
    for url in (endpoints.gateway, endpoints.patient, endpoints.postgres or ""):
        require_loopback(url)
    if not stack.supervisor.running:
        raise SystemExit(f"no supervisord in {stack.state_dir}: start the stack with `make up` (same env)")
    login = preflight(endpoints, settings.email, settings.password)  # log in once; the token serves the run
    result = asyncio.run(_run(stack, endpoints, login.token, settings))
    print_report(result)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2, default=str))
        log(f"results in {output}")
    return result


async def _run(stack: Stack, endpoints: Endpoints, token: str, settings: ChaosSettings) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:10]
    base = await baseline(endpoints)
    restarts_before = await asyncio.to_thread(stack.supervisor.restarts)
    workload = Workload(
        gateway=endpoints.gateway,
        token=token,
        run_id=run_id,
        rate=settings.rate,
        clients=settings.clients,
        request_timeout=settings.request_timeout,
    )
    killer = Killer(stack, interval=settings.interval, seed=settings.seed)
    log(
        f"chaos run {run_id}: {settings.seconds:.0f}s of ~{settings.rate:.0f} requests/s from {settings.clients} "
        f"clients, a kill -9 every {settings.interval:.0f}s"
    )
    started = time.monotonic()
    await asyncio.gather(
        workload.run(seconds=settings.seconds, grace_seconds=settings.grace_seconds, seed=settings.seed),
        killer.run(settings.seconds),
    )
    run_end = time.monotonic()
    log(f"workload done after {run_end - started:.0f}s ({len(workload.attempts)} requests); settling")
    settling = await settle(stack, endpoints, workload, base, settings.settle_seconds)
    await killer.settled()  # each watcher gives up 60 s after its kill
    facts = settling.facts if settling.facts is not None else await _last_look(endpoints, workload, base, settling)
    restarts_after = await asyncio.to_thread(stack.supervisor.restarts)
    states = {p.name: p.state for p in await asyncio.to_thread(stack.supervisor.processes)}
    checks = verdict(workload, facts, base)
    return build_result(
        run_id=run_id,
        seconds=settings.seconds,
        started=started,
        run_end=run_end,
        workload=workload,
        kills=killer.kills,
        restarts={name: restarts_after.get(name, 0) - restarts_before.get(name, 0) for name in states},
        states=states,
        settling=settling,
        checks=checks,
    )


async def _last_look(endpoints: Endpoints, workload: Workload, base: Any, settling: Settling) -> Facts:
    try:
        return await collect(endpoints, workload, base.db_time)
    except Exception as exc:
        raise SystemExit(f"the databases do not answer after settling ({exc}): {settling.waiting_for}") from exc


def exit_code(result: dict[str, Any]) -> int:
    """1 when anything was lost or duplicated, or the stack did not come back; the reasons are printed."""
    reasons = []
    if result["checks"]["lost"]:
        reasons.append(f"{len(result['checks']['lost'])} lost")
    if result["checks"]["duplicated"]:
        reasons.append(f"{len(result['checks']['duplicated'])} duplicated")
    if not result["all_running"] or result["settle"]["waiting_for"]:
        reasons.append("the stack did not settle: " + "; ".join(result["settle"]["waiting_for"] or ["not running"]))
    print("\nFAILED: " + ", ".join(reasons) if reasons else "\nOK: nothing lost, nothing duplicated, all back")
    return 1 if reasons else 0


def main(description: str | None) -> int:
    """The command line of bench/chaos.py (defaults: CHAOS_* variables, else ChaosSettings)."""
    defaults = ChaosSettings()
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("CHAOS_SECONDS") or defaults.seconds),
        help=f"length of the workload (CHAOS_SECONDS, default {defaults.seconds:.0f})",
    )
    parser.add_argument("--interval", type=float, default=defaults.interval, help="seconds between kills (10)")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="requests per second, all clients (15)")
    parser.add_argument("--clients", type=int, default=defaults.clients, help="concurrent clients (4)")
    parser.add_argument("--grace-seconds", type=float, default=defaults.grace_seconds, help="retries after the end")
    parser.add_argument("--settle-seconds", type=float, default=defaults.settle_seconds, help="wait to settle (120)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="which processes get killed, in order")
    parser.add_argument("--output", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    if not 0 < args.seconds <= 3600 or args.rate <= 0 or not 0 < args.clients <= 64 or args.interval <= 0:
        parser.error("--seconds must be in (0, 3600], --rate and --interval positive, --clients in 1..64")
    names = {f.name for f in dataclasses.fields(ChaosSettings)}  # each option's dest is a settings field
    settings = ChaosSettings(**{name: value for name, value in vars(args).items() if name in names})
    log(f"seed {settings.seed}")
    return exit_code(run_chaos(default_stack(), settings, args.output))
