"""Publisher of billing-account requests: BillingService.CreateBillingAccount over a grpc.aio channel.

Every call has a deadline. The channel retries UNAVAILABLE only (service config; safe because billing
is idempotent per patientId) and does not wait for readiness, so a billing outage fails a pass fast and
the relay's own capped backoff decides when to try again. INVALID_ARGUMENT parks the row.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from patient_service.outbox.events import BILLING_ACCOUNT_CLOSE_REQUESTED
from patient_service.outbox.models import Destination
from patient_service.outbox.relay import Delivery, OutboxRow
from pm_common.telemetry import continuing, tracing_enabled
from pm_common.tokens import ServiceTokens
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "BillingService", "method": "CreateBillingAccount"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    # gRPC's default reconnect backoff grows to 120 s; billing coming back should be noticed within seconds.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

_POISON_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


class BillingPublisher:
    """Asks billing-service for each claimed row's account, all rows of a batch concurrently."""

    destination = Destination.BILLING_ACCOUNT

    def __init__(self, *, target: str, deadline_seconds: float, credentials: ServiceTokens) -> None:
        self._target = target
        self._deadline_seconds = deadline_seconds
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._stub: billing_service_pb2_grpc.BillingServiceStub | None = None

    @property
    def ready(self) -> bool:
        """True once the channel exists (it connects lazily; calls fail fast while billing is down)."""
        return self._stub is not None

    @property
    def state(self) -> str:
        """The channel's connectivity (IDLE, CONNECTING, READY, TRANSIENT_FAILURE, SHUTDOWN)."""
        if self._channel is None:
            return "DOWN"
        return self._channel.get_state(try_to_connect=False).name

    def start(self) -> None:
        """Create the channel inside the running loop (grpc.aio objects are bound to it)."""
        interceptors = aio_client_interceptors() if tracing_enabled() else None  # type: ignore[no-untyped-call]  # the call continues the row's trace
        self._channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS, interceptors=interceptors)
        self._stub = billing_service_pb2_grpc.BillingServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled; their rows stay PENDING)."""
        if self._channel is not None:
            await self._channel.close(grace=None)
        self._channel = None
        self._stub = None

    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery:
        """Call CreateBillingAccount for every row; SENT on OK, PARKED on INVALID_ARGUMENT, else retry."""
        delivery = Delivery()
        outcomes = await asyncio.gather(*(continuing(row.trace_context, self._call(row)) for row in rows))
        for row, (outcome, error) in zip(rows, outcomes, strict=True):
            if outcome == "sent":
                delivery.sent.add(row.id)
            elif outcome == "parked":
                delivery.parked[row.id] = error
            else:
                delivery.failed[row.id] = error
        return delivery

    async def _call(self, row: OutboxRow) -> tuple[str, str]:
        stub = self._stub
        if stub is None:
            return "failed", "BillingChannelClosed"
        closing = row.event_type == BILLING_ACCOUNT_CLOSE_REQUESTED
        try:
            request: billing_service_pb2.BillingRequest | billing_service_pb2.BillingAccountRequest = (
                billing_service_pb2.BillingAccountRequest.FromString(row.payload)
                if closing
                else billing_service_pb2.BillingRequest.FromString(row.payload)
            )
        except DecodeError:
            return "parked", "DecodeError"
        method = stub.CloseBillingAccount if closing else stub.CreateBillingAccount
        try:
            response = await method(
                request,
                timeout=self._deadline_seconds,
                metadata=(("authorization", self._credentials.authorization()),),
            )
        except grpc.aio.AioRpcError as exc:
            # Only the status code is kept: details might echo the request (name, email). UNAUTHENTICATED and
            # PERMISSION_DENIED (a key that differs from billing's) are retried, never parked: fixing the
            # configuration delivers them.
            code = exc.code()
            return ("parked" if code in _POISON_CODES else "failed"), code.name
        log.info(
            "billing account closed" if closing else "billing account ensured",
            extra={"patient_id": str(row.aggregate_id), "account_id": response.accountId, "status": response.status},
        )
        return "sent", ""
