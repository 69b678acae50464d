"""The BillingService gRPC servicer: a thin layer that maps outcomes to status codes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_service.accounts.service import (
    InvalidAccountRequestError,
    close_account,
    find_account,
    get_or_create_account,
)
from pm_common.database import database_unavailable
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

CreateContext = grpc.aio.ServicerContext[billing_service_pb2.BillingRequest, billing_service_pb2.BillingResponse]
GetContext = grpc.aio.ServicerContext[billing_service_pb2.BillingAccountRequest, billing_service_pb2.BillingResponse]


class DeadlineExceededError(Exception):
    """The caller's deadline passed before the account could be read or written."""


class BillingServicer(billing_service_pb2_grpc.BillingServiceServicer):
    """`/BillingService/CreateBillingAccount`: idempotent per patientId."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._work: set[asyncio.Task[Any]] = set()

    async def CreateBillingAccount(
        self, request: billing_service_pb2.BillingRequest, context: CreateContext
    ) -> billing_service_pb2.BillingResponse:
        """Return the patient's account (created on the first call); INVALID_ARGUMENT for a bad request."""
        account = await self._serve(
            lambda: get_or_create_account(
                self._engine, patient_id=request.patientId, name=request.name, email=request.email
            ),
            context,
            method="CreateBillingAccount",
        )
        return billing_service_pb2.BillingResponse(accountId=account.account_id, status=account.status)

    async def GetBillingAccount(
        self, request: billing_service_pb2.BillingAccountRequest, context: GetContext
    ) -> billing_service_pb2.BillingResponse:
        """The patient's account; NOT_FOUND when none exists yet, INVALID_ARGUMENT for an empty patientId."""
        account = await self._serve(
            lambda: find_account(self._engine, patient_id=request.patientId), context, method="GetBillingAccount"
        )
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no billing account for this patientId")
        return billing_service_pb2.BillingResponse(accountId=account.account_id, status=account.status)

    async def CloseBillingAccount(
        self, request: billing_service_pb2.BillingAccountRequest, context: GetContext
    ) -> billing_service_pb2.BillingResponse:
        """Close the patient's account and erase its name and email (after the patient was deleted)."""
        account = await self._serve(
            lambda: close_account(self._engine, patient_id=request.patientId), context, method="CloseBillingAccount"
        )
        return billing_service_pb2.BillingResponse(accountId=account.account_id, status=account.status)

    async def _serve(
        self,
        query: Callable[[], Awaitable[T]],
        context: grpc.aio.ServicerContext[Any, Any],
        *,
        method: str,
    ) -> T:
        """Run one database call for an RPC and map its failures to status codes.

        grpc.aio cancels a handler abruptly at the deadline, which can hand a connection back to the pool
        while PostgreSQL still runs (and waits on locks for) its statement. The database work therefore
        runs in its own task, shielded, under the same deadline, and cancels its statement cleanly.
        """
        work = asyncio.create_task(self._within(query, timeout_seconds=context.time_remaining()))
        self._work.add(work)
        work.add_done_callback(self._finished)
        try:
            return await asyncio.shield(work)
        except InvalidAccountRequestError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except DeadlineExceededError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except Exception as error:
            if database_unavailable(error):
                log.warning("database unavailable", extra={"error": type(error).__name__, "method": method})
                await context.abort(grpc.StatusCode.UNAVAILABLE, "billing database unavailable, retry later")
            # A statement error's text carries the bound parameters (name, email): log its type, never its text.
            log.error(
                f"{method} failed",
                extra={"error": type(error).__name__},
                exc_info=not isinstance(error, sa_exc.StatementError),
            )
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable: context.abort raises")

    @staticmethod
    async def _within(query: Callable[[], Awaitable[T]], *, timeout_seconds: float | None) -> T:
        deadline = asyncio.timeout(timeout_seconds)  # None (the caller sent no deadline) means no limit
        try:
            async with deadline:
                return await query()
        except TimeoutError:
            if deadline.expired():
                raise DeadlineExceededError from None
            raise

    def _finished(self, work: asyncio.Task[Any]) -> None:
        self._work.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved here too, for work whose caller was gone before it ended

    async def drain(self) -> None:
        """Wait for database work still running for calls that were cancelled (each ends by its deadline)."""
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)
