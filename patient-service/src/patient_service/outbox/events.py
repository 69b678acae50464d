"""Outbox rows for a patient change: the Kafka event and the billing-account request, serialized once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from patient_service.outbox.models import Destination
from pm_common.telemetry import trace_context_text
from pm_proto import billing_service_pb2, patient_event_pb2


class EventType(StrEnum):
    """event_type of PatientEvent (the original sent only the first)."""

    PATIENT_CREATED = "PATIENT_CREATED"
    PATIENT_UPDATED = "PATIENT_UPDATED"
    PATIENT_DELETED = "PATIENT_DELETED"


BILLING_ACCOUNT_REQUESTED = "BILLING_ACCOUNT_REQUESTED"
BILLING_ACCOUNT_CLOSE_REQUESTED = "BILLING_ACCOUNT_CLOSE_REQUESTED"


def patient_event_row(*, event_type: EventType, patient: Mapping[Any, Any], occurred_at: datetime) -> dict[str, Any]:
    """The outbox row of one PatientEvent (value bytes ready for topic `patient`, key = patient id).

    PATIENT_DELETED carries the id only: nothing of a deleted patient is sent anywhere again.
    """
    event_id = uuid.uuid4()
    deleted = event_type is EventType.PATIENT_DELETED
    message = patient_event_pb2.PatientEvent(
        patientId=str(patient["id"]),
        name="" if deleted else patient["name"],
        email="" if deleted else patient["email"],
        event_type=event_type.value,
        event_id=str(event_id),
    )
    message.occurred_at.FromDatetime(occurred_at)
    return {
        "event_id": event_id,
        "destination": Destination.PATIENT_EVENT.value,
        "aggregate_id": patient["id"],
        "event_type": event_type.value,
        "payload": message.SerializeToString(),
        "trace_context": trace_context_text(),
    }


def billing_request_row(*, patient: Mapping[Any, Any]) -> dict[str, Any]:
    """The outbox row asking billing-service for the patient's account (idempotent per patientId there)."""
    message = billing_service_pb2.BillingRequest(
        patientId=str(patient["id"]), name=patient["name"], email=patient["email"]
    )
    return {
        "event_id": uuid.uuid4(),
        "destination": Destination.BILLING_ACCOUNT.value,
        "aggregate_id": patient["id"],
        "event_type": BILLING_ACCOUNT_REQUESTED,
        "payload": message.SerializeToString(),
        "trace_context": trace_context_text(),
    }


def billing_close_row(*, patient_id: uuid.UUID) -> dict[str, Any]:
    """The outbox row asking billing-service to close the deleted patient's account and erase its copy."""
    message = billing_service_pb2.BillingAccountRequest(patientId=str(patient_id))
    return {
        "event_id": uuid.uuid4(),
        "destination": Destination.BILLING_ACCOUNT.value,
        "aggregate_id": patient_id,
        "event_type": BILLING_ACCOUNT_CLOSE_REQUESTED,
        "payload": message.SerializeToString(),
        "trace_context": trace_context_text(),
    }
