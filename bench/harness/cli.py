"""`make bench`: the command line, and the sections run in order against the stack."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from devstack.cli import default_stack
from devstack.stack import Stack

from .compare import compare
from .context import BenchContext
from .cpu import load_average
from .dataset import dataset
from .delivery import check_delivery
from .endpoints import Endpoints, gateway_url, patient_url, postgres_url, require_loopback
from .event_lag import event_lag
from .figures import Checks, Figures
from .java import comparison_failed, java_loads, java_startup
from .java_table import print_java_table
from .memory import measure_memory
from .outbox import wait_for_relay
from .preflight import preflight
from .processes import StackProcesses
from .progress import log
from .results import shown, write_results
from .scenarios import creates, get_by_id, get_c128
from .startup import measure_startup
from .table import print_table
from .tracing import tracing_cost
from .wrk import Wrk, ensure_wrk

SECTIONS = ("memory", "get", "c128", "create", "lag", "startup", "java", "tracing")


def parser_for(description: str | None, stack: Stack) -> argparse.ArgumentParser:
    """The command line; defaults from BENCH_* variables, else `stack`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default=os.environ.get("BENCH_BASE_URL", gateway_url(stack)))
    parser.add_argument("--patient-url", default=os.environ.get("BENCH_PATIENT_URL", patient_url(stack)))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", postgres_url(stack)),
        help="the cluster with the services' databases (event lag and delivery check); '' to skip those",
    )
    parser.add_argument(
        "--only",
        default=",".join(s for s in SECTIONS if s not in ("tracing", "java")),  # each needs its own stack settings
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk load (default 10)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=60,
        metavar="SECONDS",
        help="warm-up of each Java-comparison load before its rounds, as the Java figures had (default 60)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per load; medians are reported (default 3)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a run disturbed by other processes")
    parser.add_argument("--patients", type=int, default=10_000, help="size of the GET data set (default 10000)")
    parser.add_argument("--lag-rate", type=int, default=100, help="creates per second for the event lag (100)")
    parser.add_argument("--lag-seconds", type=int, default=10, help="length of each event-lag round (10)")
    parser.add_argument("--email", default="testuser@test.com")
    parser.add_argument("--password", default="password123")
    parser.add_argument("--output", help="results file (default bench/results/bench-<time>.json)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print a before/after table")
    return parser


def main(description: str | None) -> int:
    """Run the sections asked for, print the table, write the results file; 1 when anything failed."""
    stack = default_stack()  # the `make up` stack: contract ports unless <NAME>_PORT, state in PM_STATE_DIR
    parser = parser_for(description, stack)
    args = parser.parse_args()
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
        return 0
    sections: set[str] = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    for url in (args.base_url, args.patient_url, args.postgres_url or "postgresql://127.0.0.1"):
        require_loopback(url)
    # Memory, CPU per process and start-up need the launcher's running supervisor; another stack gets the rest.
    own_stack = urlsplit(args.base_url).port == stack.ports.gateway and stack.supervisor.running
    processes = StackProcesses(stack if own_stack else None)
    endpoints = Endpoints(
        gateway=args.base_url.rstrip("/"), patient=args.patient_url.rstrip("/"), postgres=args.postgres_url or None
    )
    wrk = Wrk(ensure_wrk(), processes, args.seconds, args.retries)
    log(
        f"bench: gateway {endpoints.gateway}, patient-service {endpoints.patient}; {os.cpu_count()} cores, "
        f"load average {load_average():.2f}"
    )
    if load_average() > 1.0:
        log("note: the machine is busy (load > 1); runs disturbed by other processes are repeated and marked")

    figures: Figures = {}
    checks: Checks = {}
    if "memory" in sections and (idle := measure_memory(processes, "memory_idle")) is not None:
        figures["memory_idle"] = idle
    login = preflight(endpoints, args.email, args.password)
    context = BenchContext(endpoints, login.token, wrk, processes, args.repeat)
    if "java" in sections:  # first: its list is of the 15 seed patients, before the data set exists
        figures["java"] = java_loads(
            context, warmup=args.warmup, email=args.email, password=args.password, memory=figures.get("memory_idle")
        )
    if sections & {"get", "c128", "tracing"}:
        ids_file = dataset(context, args.patients)
        if "get" in sections:
            figures["get_gateway_c32"], figures["get_direct_c32"], figures["gateway_ratio"] = get_by_id(
                context, ids_file
            )
        if "c128" in sections:
            figures["get_gateway_c128"] = get_c128(context, ids_file)
    if "create" in sections:
        figures["create_c32"] = creates(context)
    if "lag" in sections:
        figures["event_lag"] = event_lag(context, args.lag_rate, args.lag_seconds)
    if "tracing" in sections:  # off and on against no instrumentation (restarts the services three times)
        figures["tracing"] = tracing_cost(context, ids_file, args.lag_rate, args.lag_seconds)  # type: ignore[typeddict-unknown-key]
    checks["delivery"] = check_delivery(endpoints, login.started_db_time)
    if "memory" in sections:
        wait_for_relay(endpoints.patient, "after the loads")
        time.sleep(3)
        if (after_load := measure_memory(processes, "memory_after_load")) is not None:
            figures["memory_after_load"] = after_load
    if "startup" in sections and (startup := measure_startup(processes.stack, args.repeat)) is not None:
        figures["startup"] = startup
    if "java" in sections and (seconds := java_startup(processes.stack, args.repeat, figures.get("startup"))):
        figures["java"]["startup_services_only_seconds"] = seconds

    arguments = {k: v for k, v in vars(args).items() if k not in ("password", "compare")}
    out = write_results(args.output, arguments, figures, checks)
    print_table(figures, checks)
    if "java" in figures:
        print_java_table(figures["java"])
    log(f"figures written to {shown(out)}")
    return 1 if failed(figures, checks) or comparison_failed(figures) else 0


def failed(figures: Figures, checks: Checks) -> bool:
    """The delivery check found a mismatch, or a load had errors or non-2xx answers."""
    delivery = checks.get("delivery")
    failed_checks = delivery is not None and "skipped" not in delivery and delivery.get("ok") is False
    loads = (
        figures.get("get_gateway_c32"),
        figures.get("get_direct_c32"),
        figures.get("get_gateway_c128"),
        figures.get("create_c32"),
    )
    any_errors = any(load is not None and bool(load["errors"] or load["non_2xx"]) for load in loads)
    return failed_checks or any_errors
