"""Who may call billing-service: a SERVICE token on every BillingService call, over real gRPC."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest

from billing_service import callers
from pm_common import tokens
from pm_common.access import Role
from pm_proto import billing_service_pb2, billing_service_pb2_grpc

from .conftest import CALLER, KEY, Billing, billing_settings, migrate, running_billing

OTHER_KEY = b"another-key-of-at-least-32-bytes!!"


def token(*, role: str | None = Role.SERVICE, algorithm: str = "HS256", key: str | bytes = KEY, **claims: Any) -> str:
    values: dict[str, Any] = {"sub": CALLER, "iat": int(time.time()), "exp": int(time.time()) + 300}
    if role is not None:
        values["role"] = role
    values.update(claims)
    return jwt.encode(values, key, algorithm=algorithm)


def bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {value}"),)


async def create(stub: billing_service_pb2_grpc.BillingServiceStub, metadata: Any = None) -> Any:
    request = billing_service_pb2.BillingRequest(patientId=str(uuid.uuid4()), name="Ada", email="ada@example.com")
    return await stub.CreateBillingAccount(request, metadata=metadata, timeout=5)


async def get(stub: billing_service_pb2_grpc.BillingServiceStub, metadata: Any = None) -> Any:
    request = billing_service_pb2.BillingAccountRequest(patientId="nobody")
    return await stub.GetBillingAccount(request, metadata=metadata, timeout=5)


async def status_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        await call()
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def bare_stub(channel: grpc.aio.Channel) -> billing_service_pb2_grpc.BillingServiceStub:
    return billing_service_pb2_grpc.BillingServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("call", [create, get], ids=["CreateBillingAccount", "GetBillingAccount"])
async def test_no_credential_is_unauthenticated(billing: Billing, call: Any) -> None:
    async with grpc.aio.insecure_channel(billing.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(bare_stub(channel))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "Missing bearer token"


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (f"Bearer {token(key=OTHER_KEY)}", "Invalid token"),
        (f"Bearer {token(exp=int(time.time()) - 1)}", "Token expired"),
        (f"Bearer {token(algorithm='none', key='')}", "Invalid token"),
        ("Bearer not-a-jwt", "Invalid token"),
        (f"Basic {token()}", "Authorization must use the Bearer scheme"),
        ("", "Missing bearer token"),
    ],
    ids=["bad-signature", "expired", "alg-none", "garbage", "basic-scheme", "empty"],
)
async def test_bad_credential_is_unauthenticated(
    billing: Billing, authorization: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=callers.__name__)
    async with grpc.aio.insecure_channel(billing.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(bare_stub(channel), metadata=(("authorization", authorization),))
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, message)
    refusals = [r for r in caplog.records if r.getMessage() == "grpc call refused"]
    assert [(r.status, r.reason) for r in refusals] == [("UNAUTHENTICATED", message)]  # type: ignore[attr-defined]
    token_part = authorization.partition(" ")[2]
    assert not token_part or token_part not in caplog.text, "a refusal must never log the token"


@pytest.mark.parametrize(
    "role", [Role.ADMIN, Role.STAFF, Role.ANALYST, "ROOT", None], ids=["admin", "staff", "analyst", "unknown", "none"]
)
async def test_a_valid_token_of_another_role_is_permission_denied(billing: Billing, role: str | None) -> None:
    user_token = token(role=role, sub="admin@example.com")
    for call in (create, get):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(billing.stub, metadata=bearer(user_token))  # instead of the fixture's
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert caught.value.details() == "Your role may not do this"


# The demo key has 51 bytes; PyJWT recommends 64 for HS512 (the original's jjwt signs HS512 only from 64).
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_service_token_of_each_hmac_algorithm_is_accepted(billing: Billing, algorithm: str) -> None:
    async with grpc.aio.insecure_channel(billing.address) as channel:
        response = await create(bare_stub(channel), metadata=bearer(token(algorithm=algorithm)))
        assert response.status == "ACTIVE"
        assert await status_of(lambda: get(bare_stub(channel), metadata=bearer(token(algorithm=algorithm)))) == (
            grpc.StatusCode.NOT_FOUND  # past the check: the servicer answered
        )


async def test_accepted_calls_log_the_caller_at_debug_only(billing: Billing, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=callers.__name__)
    await create(billing.stub)
    accepted = [r for r in caplog.records if r.getMessage() == "grpc call accepted"]
    assert [(r.levelno, r.caller, r.method) for r in accepted] == [  # type: ignore[attr-defined]
        (logging.DEBUG, CALLER, "/BillingService/CreateBillingAccount")
    ]


async def test_a_token_is_verified_once_then_served_from_the_cache(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    verify = tokens.verify_token

    def counting(value: str, *, key: bytes) -> dict[str, Any]:
        verified.append(value)
        return verify(value, key=key)

    monkeypatch.setattr(tokens, "verify_token", counting)
    for _ in range(5):
        await create(billing.stub)
    assert len(verified) == 1  # the first call's; the other four were served from the verifier's cache


async def test_unknown_method_needs_a_credential_too(billing: Billing) -> None:
    def call(channel: grpc.aio.Channel) -> Any:
        return channel.unary_unary("/BillingService/NoSuchMethod", request_serializer=None, response_deserializer=None)(
            b"", timeout=5
        )

    async with grpc.aio.insecure_channel(billing.address) as channel:
        assert await status_of(lambda: call(channel)) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(lambda: call(billing.channel)) == grpc.StatusCode.UNIMPLEMENTED


async def test_allow_unauthenticated_accepts_calls_without_a_credential_only(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = billing_settings(database_url, billing_allow_unauthenticated=True)
    await migrate(database_url)
    async with (
        running_billing(settings) as billing,
        grpc.aio.insecure_channel(billing.address) as channel,
    ):
        assert [r.levelno for r in caplog.records if "BILLING_ALLOW_UNAUTHENTICATED" in r.getMessage()] == [
            logging.WARNING
        ]
        stub = bare_stub(channel)
        assert (await create(stub)).status == "ACTIVE"
        assert await status_of(lambda: get(stub)) == grpc.StatusCode.NOT_FOUND
        assert await status_of(lambda: create(stub, metadata=bearer(token(key=OTHER_KEY)))) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert await status_of(lambda: create(stub, metadata=(("authorization", ""),))) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert await status_of(lambda: create(stub, metadata=bearer(token(role=Role.ADMIN)))) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert (await create(billing.stub)).status == "ACTIVE"  # a valid SERVICE token, as always


async def test_no_warning_when_credentials_are_required(billing: Billing, caplog: pytest.LogCaptureFixture) -> None:
    started = caplog.get_records("setup")  # the fixture started the server (warnings reach caplog)
    assert not [r for r in started if "BILLING_ALLOW_UNAUTHENTICATED" in r.getMessage()]
