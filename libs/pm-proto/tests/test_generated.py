"""The committed modules match a fresh protoc run and keep the original's wire names and numbers."""

import subprocess
import sys
from pathlib import Path

from pm_proto import billing_service_pb2, billing_service_pb2_grpc, patient_event_pb2

GENERATE = Path(__file__).resolve().parents[1] / "generate.py"


def test_committed_modules_match_a_fresh_generation() -> None:
    result = subprocess.run([sys.executable, str(GENERATE), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_billing_service_has_no_package_so_the_method_path_is_the_originals() -> None:
    service = billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"]
    assert service.full_name == "BillingService"
    method = service.methods_by_name["CreateBillingAccount"]
    assert f"/{service.full_name}/{method.name}" == "/BillingService/CreateBillingAccount"
    assert hasattr(billing_service_pb2_grpc, "BillingServiceStub")


def test_billing_field_numbers() -> None:
    request = {f.name: f.number for f in billing_service_pb2.BillingRequest.DESCRIPTOR.fields}
    response = {f.name: f.number for f in billing_service_pb2.BillingResponse.DESCRIPTOR.fields}
    assert request == {"patientId": 1, "name": 2, "email": 3}
    assert response == {"accountId": 1, "status": 2}


def test_patient_event_keeps_the_original_fields_and_package() -> None:
    descriptor = patient_event_pb2.PatientEvent.DESCRIPTOR
    assert descriptor.full_name == "patient.events.PatientEvent"
    numbers = {f.name: f.number for f in descriptor.fields}
    assert {k: numbers[k] for k in ("patientId", "name", "email", "event_type")} == {
        "patientId": 1,
        "name": 2,
        "email": 3,
        "event_type": 4,
    }


def test_an_original_event_still_parses() -> None:
    # Bytes as the original's producer wrote them: fields 1-4 only.
    original = patient_event_pb2.PatientEvent(
        patientId="p-1", name="n", email="e@x.org", event_type="PATIENT_CREATED"
    ).SerializeToString()
    parsed = patient_event_pb2.PatientEvent.FromString(original)
    assert (parsed.patientId, parsed.event_type, parsed.event_id) == ("p-1", "PATIENT_CREATED", "")
