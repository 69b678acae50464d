"""`devstack up|down|status|clean`: what `make up`, `make down`, `make status` and `make clean` run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack import process
from devstack.kafka import DEFAULT_RETENTION_SECONDS
from devstack.services import SERVICES
from devstack.stack import ROOT, Ports, Stack
from pm_common.settings import DEMO_JWT_SECRET


def default_stack() -> Stack:
    """The developer's stack: contract ports (overridable by env), state in .run/ (PM_STATE_DIR).

    JWT_SECRET from the environment, so that a stack can share its key with other deployments; else the
    published demo key (dev mode accepts it). <NAME>_REPLICAS (the table's replicas_env) set how many
    instances of a service run; PATIENT_TOPIC_RETENTION_SECONDS how long Kafka keeps `patient` events.
    """
    return Stack(
        state_dir=Path(os.environ.get("PM_STATE_DIR", ROOT / ".run")),
        ports=Ports.from_env(),
        jwt_secret=os.environ.get("JWT_SECRET") or DEMO_JWT_SECRET,
        log_level=os.environ.get("LOG_LEVEL", "INFO"),
        replicas={s.name: int(os.environ.get(s.replicas_env) or 1) for s in SERVICES if s.replicas_env},
        patient_topic_retention_seconds=int(
            os.environ.get("PATIENT_TOPIC_RETENTION_SECONDS") or DEFAULT_RETENTION_SECONDS
        ),
    )


def up(stack: Stack) -> int:
    """Start everything, then print where it answers."""
    try:
        services = stack.up()
    except (RuntimeError, TimeoutError, ValueError) as exc:
        print(f"make up failed: {exc}\nlogs: {stack.log_dir}", file=sys.stderr)
        return 1
    print()
    for service in services:
        for instance in stack.instances(service):
            print(f"  {instance.name:<18} {instance.url}")
    if any(s.name == "billing-service" for s in services):
        print(f"  {'billing gRPC':<18} 127.0.0.1:{stack.ports.billing_grpc}")
    print(f"  {'postgresql':<18} postgresql://postgres@127.0.0.1:{stack.ports.postgres}")
    print(f"  {'kafka':<18} {stack.kafka.bootstrap}")
    print(f"\nlogs in {stack.log_dir}; supervised (what dies is restarted): `make status`; stop with `make down`")
    missing = [s.name for s in SERVICES if s not in services]
    if missing:
        print(f"not built yet (no package): {', '.join(missing)}")
    return 0


def status(stack: Stack) -> int:
    """One line per supervised process: state, pid, uptime, restarts; then what supervisord gave up on."""
    supervisor = stack.supervisor
    if not supervisor.running:
        print(f"not running (no supervisord in {stack.state_dir}): start it with `make up`")
        return 0
    rows = supervisor.processes()
    print(f"{'PROCESS':<20} {'STATE':<9} {'PID':>8} {'UPTIME':>10} {'RESTARTS':>8}")
    for row in rows:
        uptime = _duration(row.uptime_seconds) if row.uptime_seconds is not None else "-"
        print(f"{row.name:<20} {row.state:<9} {row.pid or '-':>8} {uptime:>10} {row.restarts:>8}")
    for row in rows:
        if row.state == "FATAL":
            print(f"FATAL: supervisord gave up on {row.name} ({row.detail}); see {stack.log_dir}/{row.name}.log")
    print(f"\nsupervisord pid {process.read_pid(supervisor.pid_file)}, config {supervisor.config_file}")
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def main() -> None:
    """Entry point of the `devstack` console script."""
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "clean"])
    command = parser.parse_args().command
    stack = default_stack()
    if command == "up":
        sys.exit(up(stack))
    if command == "down":
        stack.down()
        print("stopped")
    elif command == "clean":
        stack.clean()
        print("stopped and removed all local data")
    else:
        sys.exit(status(stack))
