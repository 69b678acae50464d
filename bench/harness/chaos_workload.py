"""The chaos run's clients: a paced mix of creates, reads, updates and deletes through the gateway.

Every operation is retried on what a restart causes (no answer, a timeout, 5xx, 409 while a first try of
the same Idempotency-Key still runs) until it succeeds or the run's hard deadline passes. A create carries
an Idempotency-Key and keeps it on every retry. Each client owns the patients it created, so no two clients
ever race on one patient; what each patient should look like at the end is tracked here.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .patients import patient_body

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})  # 409: the first try of the same key still runs
OPERATIONS = ("create", "read", "update", "delete")
WEIGHTS = (0.35, 0.35, 0.2, 0.1)


@dataclass(frozen=True)
class Attempt:
    """One HTTP request: when it ended (monotonic), which operation, its status (0: no answer)."""

    at: float
    op: str
    status: int

    @property
    def status_class(self) -> str:
        """2xx, 4xx, 5xx or `no answer` (connection refused or reset, timeout)."""
        return "no answer" if self.status == 0 else f"{self.status // 100}xx"


@dataclass(frozen=True)
class Operation:
    """One client operation and how it ended: ok (first try), retried-ok, or failed."""

    op: str
    started: float
    attempts: int
    outcome: str
    last_status: int


@dataclass
class Patient:
    """What the run expects of one patient it (tried to) create, by its marker e-mail."""

    email: str
    key: str
    body: dict[str, str]
    ids: list[str] = field(default_factory=list)  # the id of every 201 this key got (first and replays)
    acknowledged: bool = False
    deleted: bool = False  # a DELETE was acknowledged (204, or 404 after an unanswered try)
    delete_unsure: bool = False  # a DELETE was sent but never acknowledged: gone or not, both are fine
    names: list[str] = field(default_factory=list)  # acknowledged name, then every unacknowledged one after it

    @property
    def id(self) -> str | None:
        """The id the first acknowledgement named."""
        return self.ids[0] if self.ids else None


@dataclass
class Workload:
    """Shared by the clients: the log of every attempt and operation, and every patient by e-mail."""

    gateway: str
    token: str
    run_id: str
    rate: float  # requests per second, all clients together (first tries; retries come on top)
    clients: int
    request_timeout: float = 5.0
    attempts: list[Attempt] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    patients: dict[str, Patient] = field(default_factory=dict)

    async def run(self, *, seconds: float, grace_seconds: float, seed: int) -> None:
        """The clients: new operations for `seconds`; the ones still retrying get `grace_seconds` more."""
        started = time.monotonic()
        deadline, hard_deadline = started + seconds, started + seconds + grace_seconds
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            connector=aiohttp.TCPConnector(limit=self.clients * 2, force_close=False),
        ) as session:
            await asyncio.gather(
                *(
                    self._client(session, n, random.Random(seed + n), deadline, hard_deadline)
                    for n in range(self.clients)
                )
            )

    async def _client(
        self, session: aiohttp.ClientSession, number: int, rng: random.Random, deadline: float, hard_deadline: float
    ) -> None:
        interval = self.clients / self.rate
        owned: list[Patient] = []
        next_at = time.monotonic() + rng.uniform(0, interval)
        for sequence in range(1_000_000):  # bounded; the deadline ends it long before
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= deadline:
                return
            next_at += interval
            op = rng.choices(OPERATIONS, WEIGHTS)[0] if owned else "create"
            if op == "create":
                patient = self._new_patient(number, sequence)
                if await self._create(session, patient, hard_deadline):
                    owned.append(patient)
            elif op == "read":
                await self._read(session, rng.choice(owned), hard_deadline)
            elif op == "update":
                await self._update(session, rng.choice(owned), sequence, hard_deadline)
            else:
                patient = owned.pop(rng.randrange(len(owned)))
                await self._delete(session, patient, hard_deadline)

    def _new_patient(self, client: int, sequence: int) -> Patient:
        email = f"chaos-{self.run_id}-{client}-{sequence}@chaos.example.com"
        body = patient_body(
            name=f"Chaos {client}-{sequence}", email=email, address="1 Chaos Lane", date_of_birth="1985-03-02"
        )
        patient = Patient(email=email, key=f"chaos-{self.run_id}-{uuid.uuid4().hex}", body=body)
        patient.names.append(body["name"])
        self.patients[email] = patient
        return patient

    async def _send(
        self, session: aiohttp.ClientSession, op: str, method: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any] | None]:
        """One attempt: (status, JSON body or None); status 0 when no answer came."""
        try:
            async with session.request(method, f"{self.gateway}{path}", **kwargs) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            status, raw = 0, b""
        self.attempts.append(Attempt(time.monotonic(), op, status))
        payload = None
        if raw and status < 300:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = None
            payload = loaded if isinstance(loaded, dict) else None
        return status, payload

    async def _retrying(
        self,
        op: str,
        hard_deadline: float,
        attempt: Any,
        *,
        done: frozenset[int],
        retry: frozenset[int] = RETRY_STATUSES,
    ) -> tuple[bool, int]:
        """Call `attempt()` until its status is in `done`, a status outside `retry`, or the deadline."""
        started = time.monotonic()
        delay = 0.2
        for tries in range(1, 1000):
            status = await attempt(tries)
            if status in done or (status != 0 and status not in retry) or time.monotonic() + delay >= hard_deadline:
                ok = status in done
                outcome = "failed" if not ok else ("ok" if tries == 1 else "retried-ok")
                self.operations.append(Operation(op, started, tries, outcome, status))
                return ok, status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable: the deadline ends every retry loop")

    async def _create(self, session: aiohttp.ClientSession, patient: Patient, hard_deadline: float) -> bool:
        async def attempt(_: int) -> int:
            status, payload = await self._send(
                session, "create", "POST", "/api/patients", json=patient.body, headers={"Idempotency-Key": patient.key}
            )
            if status == 201 and payload is not None:
                patient.ids.append(str(payload.get("id")))
            return status

        ok, _ = await self._retrying("create", hard_deadline, attempt, done=frozenset({201}))
        patient.acknowledged = ok
        return ok

    async def _read(self, session: aiohttp.ClientSession, patient: Patient, hard_deadline: float) -> None:
        async def attempt(_: int) -> int:
            status, _payload = await self._send(session, "read", "GET", f"/api/patients/{patient.id}")
            return status

        await self._retrying("read", hard_deadline, attempt, done=frozenset({200}))

    async def _update(
        self, session: aiohttp.ClientSession, patient: Patient, sequence: int, hard_deadline: float
    ) -> None:
        body = {**patient.body, "name": f"Chaos {patient.body['name'].split()[1]} v{sequence}"}

        async def attempt(_: int) -> int:
            status, _payload = await self._send(session, "update", "PUT", f"/api/patients/{patient.id}", json=body)
            return status

        patient.names.append(body["name"])  # possibly applied from the first try on
        ok, _ = await self._retrying("update", hard_deadline, attempt, done=frozenset({200}))
        if ok:
            patient.names = [body["name"]]
        patient.body = body

    async def _delete(self, session: aiohttp.ClientSession, patient: Patient, hard_deadline: float) -> None:
        unanswered = False

        async def attempt(tries: int) -> int:
            nonlocal unanswered
            status, _payload = await self._send(session, "delete", "DELETE", f"/api/patients/{patient.id}")
            if status == 404 and unanswered:
                return 204  # an earlier try, whose answer was lost, deleted it
            unanswered = unanswered or status == 0 or status >= 500
            return status

        patient.delete_unsure = True
        ok, _ = await self._retrying("delete", hard_deadline, attempt, done=frozenset({204}))
        if ok:
            patient.deleted, patient.delete_unsure = True, False
