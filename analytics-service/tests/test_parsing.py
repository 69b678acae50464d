"""parse_record: what counts as an event, and why a record is set aside (pure function, no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics_service.events.parsing import InvalidReason, InvalidRecord, PatientEvent, Position, parse_record
from pm_proto import patient_event_pb2

AT = Position("patient", 2, 41)


def encode(**fields: object) -> bytes:
    return patient_event_pb2.PatientEvent(**fields).SerializeToString()  # type: ignore[arg-type]


def test_event_with_id_and_time() -> None:
    event = patient_event_pb2.PatientEvent(patientId="p-1", event_type="PATIENT_UPDATED", event_id="e-1")
    event.occurred_at.FromDatetime(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    parsed = parse_record(position=AT, value=event.SerializeToString(), timestamp_ms=0)
    assert parsed == PatientEvent(
        dedupe_key="e-1",
        event_type="PATIENT_UPDATED",
        patient_id="p-1",
        occurred_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        position=AT,
    )


def test_original_event_is_keyed_by_position_and_timed_by_the_record() -> None:
    parsed = parse_record(
        position=AT,
        value=encode(patientId="p-1", name="n", email="e", event_type="PATIENT_CREATED"),
        timestamp_ms=1_000,
    )
    assert isinstance(parsed, PatientEvent)
    assert parsed.dedupe_key == "patient:2:41"
    assert parsed.occurred_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, InvalidReason.EMPTY_VALUE),
        (b"", InvalidReason.EMPTY_VALUE),
        (b"\xff\xff\xff", InvalidReason.UNDECODABLE),
        (b"\x22\x02\xc3\x28", InvalidReason.UNDECODABLE),  # event_type with invalid UTF-8
        (b"\x08\x01", InvalidReason.UNKNOWN_EVENT_TYPE),  # decodes to an empty message
        (encode(patientId="p", event_type="PATIENT_ARCHIVED"), InvalidReason.UNKNOWN_EVENT_TYPE),
        (encode(patientId="p", event_type="patient_created"), InvalidReason.UNKNOWN_EVENT_TYPE),
        (encode(event_type="PATIENT_CREATED"), InvalidReason.BAD_PATIENT_ID),
        (encode(patientId="x" * 256, event_type="PATIENT_CREATED"), InvalidReason.BAD_PATIENT_ID),
        (encode(patientId="a\x00b", event_type="PATIENT_CREATED"), InvalidReason.BAD_PATIENT_ID),
        (encode(patientId="p", event_type="PATIENT_CREATED", event_id="e" * 256), InvalidReason.BAD_EVENT_ID),
    ],
)
def test_invalid_records(value: bytes | None, reason: InvalidReason) -> None:
    assert parse_record(position=AT, value=value, timestamp_ms=0) == InvalidRecord(reason, AT)


def test_out_of_range_timestamp_is_invalid() -> None:
    event = patient_event_pb2.PatientEvent(patientId="p", event_type="PATIENT_CREATED")
    event.occurred_at.seconds = 400_000_000_000  # year ~14645: beyond what datetime holds
    parsed = parse_record(position=AT, value=event.SerializeToString(), timestamp_ms=0)
    assert parsed == InvalidRecord(InvalidReason.BAD_OCCURRED_AT, AT)
