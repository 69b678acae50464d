"""Chaos (issue "Self-healing"): kill -9 a random process every 10 s for a minute under load; nothing lost.

The test starts a supervised stack of its own on free ports, with two instances of patient-service and of
analytics-service (never the session's shared stack: the kills would disturb the other tests), runs
bench/chaos.py against it for CHAOS_TEST_SECONDS (60) and asserts what `make chaos` checks: every
acknowledged create there exactly once (or gone when deleted), its billing account, every event counted once
by analytics, and every process RUNNING again. The stack's PostgreSQL runs crash-safe (not the test stacks'
fsync=off/synchronous_commit=off), since a kill -9 of it must not lose commits it acknowledged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Ports, Stack

ROOT = Path(__file__).resolve().parents[1]
CHAOS_SECONDS = int(os.environ.get("CHAOS_TEST_SECONDS", "60"))
REPLICAS = {"patient-service": 2, "analytics-service": 2}

pytestmark = pytest.mark.fault


@pytest.fixture(autouse=True)
def _stack_running() -> None:
    """Replaces the suite's autouse fixture of this name: this test needs none of the session's stack."""


@pytest.fixture
def chaos_stack() -> Iterator[Stack]:
    """A whole supervised stack (2 + 2 replicas) on free ports in a temp dir; cleaned away afterwards."""
    state_dir = Path(tempfile.mkdtemp(prefix="pm-chaos-", dir="/tmp"))  # short: supervisord's socket is in it
    stack = Stack(state_dir, Ports.free(), environment="test", replicas=REPLICAS)  # PostgreSQL crash-safe
    try:
        stack.up(timeout_seconds=120)
        yield stack
    finally:
        stack.clean()
        shutil.rmtree(state_dir, ignore_errors=True)


def launcher_env(stack: Stack) -> dict[str, str]:
    """The variables `make up` reads, set so that devstack.cli.default_stack() names this stack."""
    env = {f"{name.upper()}_PORT": str(port) for name, port in dataclasses.asdict(stack.ports).items()}
    env.update({"PM_STATE_DIR": str(stack.state_dir), "JWT_SECRET": stack.jwt_secret})
    env.update({"PATIENT_REPLICAS": "2", "ANALYTICS_REPLICAS": "2"})
    return {**os.environ, **env}


@pytest.mark.timeout(CHAOS_SECONDS + 240)
def test_random_kills_lose_nothing_and_duplicate_nothing(chaos_stack: Stack, tmp_path: Path) -> None:
    output = tmp_path / "chaos.json"
    seed = int(os.environ.get("CHAOS_SEED") or time.time())
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--seconds", str(CHAOS_SECONDS)]
    command += ["--grace-seconds", "10", "--settle-seconds", "90", "--seed", str(seed), "--output", str(output)]
    finished = subprocess.run(
        command, env=launcher_env(chaos_stack), capture_output=True, text=True, timeout=CHAOS_SECONDS + 180, check=False
    )
    print(finished.stdout[-8000:], finished.stderr[-4000:], sep="\n")  # the table, shown by -rA or on failure
    assert output.exists(), f"bench/chaos.py wrote no result (exit {finished.returncode}, seed {seed})"
    result = json.loads(output.read_text())

    assert result["checks"]["lost"] == [], f"seed {seed}"
    assert result["checks"]["duplicated"] == [], f"seed {seed}"
    assert result["checks"]["acknowledged"] > 100, "the workload hardly ran"
    assert len(result["kills"]) == CHAOS_SECONDS // 10 - (CHAOS_SECONDS % 10 == 0)
    assert all(kill["running_after_seconds"] is not None for kill in result["kills"]), result["kills"]
    assert result["all_running"], result["processes"]
    assert result["settle"]["waiting_for"] == []
    assert finished.returncode == 0, finished.stdout[-2000:]
