"""billing-service over gRPC: health, reflection, idempotent CreateBillingAccount, an account per new patient."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pm_e2e import api

from pm_proto import billing_service_pb2, billing_service_pb2_grpc

TIMEOUT_SECONDS = 10.0


def create_account(
    billing: billing_service_pb2_grpc.BillingServiceStub, patient_id: str, *, name: str = "IT", email: str = ""
) -> billing_service_pb2.BillingResponse:
    request = billing_service_pb2.BillingRequest(
        patientId=patient_id, name=name, email=email or api.unique_email("billing")
    )
    response: billing_service_pb2.BillingResponse = billing.CreateBillingAccount(request, timeout=TIMEOUT_SECONDS)
    return response


def test_health_check_reports_serving(grpc_channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_channel)

    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_billing_and_health(grpc_channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)

    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)

    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"BillingService", "grpc.health.v1.Health"} <= names, names


def test_create_billing_account_is_active_with_an_id(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    response = create_account(billing, str(uuid.uuid4()))

    assert response.accountId
    assert response.accountId != "12345"  # the original's constant answer
    assert response.status == "ACTIVE"


def test_create_billing_account_is_idempotent_per_patient(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    patient_id = str(uuid.uuid4())

    first = create_account(billing, patient_id)
    again = create_account(billing, patient_id, name="Other Name")

    assert again.accountId == first.accountId
    assert again.status == "ACTIVE"


def test_each_patient_gets_its_own_account(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    accounts = {create_account(billing, str(uuid.uuid4())).accountId for _ in range(5)}

    assert len(accounts) == 5


def test_concurrent_first_calls_agree_on_one_account(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    patient_id = str(uuid.uuid4())

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: create_account(billing, patient_id), range(16)))

    assert len({r.accountId for r in responses}) == 1
    assert {r.status for r in responses} == {"ACTIVE"}


def test_empty_patient_id_is_invalid_argument(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        create_account(billing, "")

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_patient_has_no_account(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        billing.GetBillingAccount(billing_service_pb2.BillingAccountRequest(patientId=str(uuid.uuid4())), timeout=5)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_every_new_patient_gets_a_billing_account(
    client: httpx.Client, auth: dict[str, str], billing: billing_service_pb2_grpc.BillingServiceStub
) -> None:
    """A create through the gateway makes billing hold an ACTIVE account for that patient, made by the system."""
    created = api.create_patient(client, auth)

    account = api.wait_for_account(billing, created["id"])  # no call of ours created it: only the system could
    again = create_account(billing, created["id"], name=created["name"], email=created["email"])

    assert account.status == "ACTIVE"
    assert account.accountId
    assert again.accountId == account.accountId


@pytest.mark.parametrize("method", ["CreateBillingAccount", "GetBillingAccount"])
def test_billing_refuses_calls_without_a_credential(
    anonymous_billing: billing_service_pb2_grpc.BillingServiceStub, method: str
) -> None:
    request = (
        billing_service_pb2.BillingRequest(patientId=str(uuid.uuid4()), name="IT", email=api.unique_email("billing"))
        if method == "CreateBillingAccount"
        else billing_service_pb2.BillingAccountRequest(patientId=str(uuid.uuid4()))
    )
    with pytest.raises(grpc.RpcError) as refused:
        getattr(anonymous_billing, method)(request, timeout=TIMEOUT_SECONDS)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_billing_refuses_a_user_token(
    anonymous_billing: billing_service_pb2_grpc.BillingServiceStub, jwt_secret: str
) -> None:
    """Least privilege: an ADMIN user may manage users and patients, not call billing directly."""
    request = billing_service_pb2.BillingRequest(patientId=str(uuid.uuid4()), name="IT", email=api.unique_email("b"))
    metadata = (("authorization", f"Bearer {api.forge_token(jwt_secret, role='ADMIN')}"),)
    with pytest.raises(grpc.RpcError) as refused:
        anonymous_billing.CreateBillingAccount(request, timeout=TIMEOUT_SECONDS, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_billing_accepts_a_service_credential(billing: billing_service_pb2_grpc.BillingServiceStub) -> None:
    assert create_account(billing, str(uuid.uuid4())).status == "ACTIVE"
