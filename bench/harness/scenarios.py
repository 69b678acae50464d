"""The wrk loads: GET by id through the gateway and directly, GET with 128 connections, creates."""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path

from .context import BenchContext
from .cpu import load_average
from .figures import GatewayRatio, LoadFigures
from .outbox import wait_for_relay
from .progress import log
from .summary import medians
from .wrk import WrkRun


def _get(context: BenchContext, *, via_gateway: bool, connections: int, ids_file: Path) -> WrkRun:
    endpoints = context.endpoints
    url, prefix = (endpoints.gateway, "/api/patients") if via_gateway else (endpoints.patient, "/patients")
    token = context.token  # patient-service checks it too: its own port is no way around the roles
    label = f"GET {'gateway' if via_gateway else 'direct'} c{connections}"
    run = context.wrk.run(
        label=label,
        url=url,
        script="get_by_id.lua",
        connections=connections,
        env={"BENCH_IDS": str(ids_file), "BENCH_PREFIX": prefix, "BENCH_TOKEN": token},
    )
    log(f"  {label:<22} {run.summary()}")
    return run


def get_by_id(context: BenchContext, ids_file: Path) -> tuple[LoadFigures, LoadFigures, GatewayRatio]:
    """Gateway and direct at 32 connections, interleaved (order alternating per round), ratio per round."""
    gateway_runs: list[WrkRun] = []
    direct_runs: list[WrkRun] = []
    for round_number in range(1, context.repeat + 1):
        log(f"GET by id, 32 connections, round {round_number}/{context.repeat} (load {load_average():.2f})")
        order = (True, False) if round_number % 2 else (False, True)
        for via_gateway in order:
            run = _get(context, via_gateway=via_gateway, connections=32, ids_file=ids_file)
            (gateway_runs if via_gateway else direct_runs).append(run)
    ratios = [g.rps / d.rps for g, d in zip(gateway_runs, direct_runs, strict=True) if d.rps]
    ratio: GatewayRatio = {
        "median": round(statistics.median(ratios), 3) if ratios else None,
        "rounds": [round(r, 3) for r in ratios],
    }
    return medians(gateway_runs), medians(direct_runs), ratio


def get_c128(context: BenchContext, ids_file: Path) -> LoadFigures:
    """GET by id through the gateway with 128 connections."""
    runs = []
    for round_number in range(1, context.repeat + 1):
        log(f"GET by id, 128 connections, round {round_number}/{context.repeat} (load {load_average():.2f})")
        runs.append(_get(context, via_gateway=True, connections=128, ids_file=ids_file))
    return medians(runs)


def creates(context: BenchContext) -> LoadFigures:
    """POST /api/patients through the gateway, 32 connections; the relay catches up between rounds."""
    runs = []
    catch_up = []
    for round_number in range(1, context.repeat + 1):
        log(f"POST /api/patients, 32 connections, round {round_number}/{context.repeat} (load {load_average():.2f})")
        run = context.wrk.run(
            label="POST c32",
            url=context.endpoints.gateway,
            script="create.lua",
            connections=32,
            env={"BENCH_PATH": "/api/patients", "BENCH_TOKEN": context.token, "BENCH_RUN_TAG": uuid.uuid4().hex[:8]},
        )
        log(f"  POST c32               {run.summary()}")
        runs.append(run)
        catch_up.append(round(wait_for_relay(context.endpoints.patient, "creates"), 2))
    figures = medians(runs)
    figures["relay_catch_up_seconds"] = catch_up
    return figures
