"""`devstack up|down|status|clean`: what `make up`, `make down` and `make clean` run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devstack import process
from devstack.services import SERVICES
from devstack.stack import ROOT, Ports, Stack
from pm_common.settings import DEMO_JWT_SECRET


def default_stack() -> Stack:
    """The developer's stack: contract ports (overridable by env), state in .run/ (PM_STATE_DIR).

    JWT_SECRET from the environment, so that a stack can share its key with other deployments; else the
    published demo key (dev mode accepts it).
    """
    return Stack(
        state_dir=Path(os.environ.get("PM_STATE_DIR", ROOT / ".run")),
        ports=Ports.from_env(),
        jwt_secret=os.environ.get("JWT_SECRET") or DEMO_JWT_SECRET,
        log_level=os.environ.get("LOG_LEVEL", "INFO"),
    )


def up(stack: Stack) -> int:
    """Start everything, then print where it answers."""
    try:
        services = stack.up()
    except (RuntimeError, TimeoutError) as exc:
        print(f"make up failed: {exc}\nlogs: {stack.log_dir}", file=sys.stderr)
        return 1
    print()
    for service in services:
        print(f"  {service.name:<18} {stack.url(service)}")
    if any(s.name == "billing-service" for s in services):
        print(f"  {'billing gRPC':<18} 127.0.0.1:{stack.ports.billing_grpc}")
    print(f"  {'postgresql':<18} postgresql://postgres@127.0.0.1:{stack.ports.postgres}")
    print(f"  {'kafka':<18} {stack.kafka.bootstrap}")
    print(f"\nlogs in {stack.log_dir}; stop with `make down`")
    missing = [s.name for s in SERVICES if s not in services]
    if missing:
        print(f"not built yet (no package): {', '.join(missing)}")
    return 0


def status(stack: Stack) -> int:
    """One line per process: running or not."""
    for service in SERVICES:
        pid = process.read_pid(stack.pid_file(service))
        print(f"{service.name:<18} {'running pid ' + str(pid) if pid else 'stopped'}")
    kafka_pid = process.read_pid(stack.kafka.pid_file)
    print(f"{'kafka':<18} {'running pid ' + str(kafka_pid) if kafka_pid else 'stopped'}")
    print(f"{'postgresql':<18} {'running' if stack.postgres.running else 'stopped'}")
    return 0


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
        status(stack)
