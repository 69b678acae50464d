"""GetBillingAccount (added here; the original had no read call) over real gRPC against real PostgreSQL."""

from __future__ import annotations

import uuid

import grpc
import pytest

from pm_proto import billing_service_pb2

from .conftest import Billing


async def test_unknown_patient_is_not_found(billing: Billing) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.stub.GetBillingAccount(billing_service_pb2.BillingAccountRequest(patientId="nobody"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_returns_the_account_create_made(billing: Billing) -> None:
    patient_id = str(uuid.uuid4())
    created = await billing.stub.CreateBillingAccount(
        billing_service_pb2.BillingRequest(patientId=patient_id, name="Ada", email="ada@example.com"), timeout=5
    )
    found = await billing.stub.GetBillingAccount(
        billing_service_pb2.BillingAccountRequest(patientId=patient_id), timeout=5
    )
    assert (found.accountId, found.status) == (created.accountId, "ACTIVE")


@pytest.mark.parametrize("patient_id", ["", "   ", "x" * 256, "a\x00b"], ids=["empty", "blank", "too-long", "nul"])
async def test_bad_patient_id_is_invalid_argument(billing: Billing, patient_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await billing.stub.GetBillingAccount(billing_service_pb2.BillingAccountRequest(patientId=patient_id), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_method_path(billing: Billing) -> None:
    call = billing.channel.unary_unary(
        "/BillingService/GetBillingAccount",
        request_serializer=billing_service_pb2.BillingAccountRequest.SerializeToString,
        response_deserializer=billing_service_pb2.BillingResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(billing_service_pb2.BillingAccountRequest(patientId="nobody"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
