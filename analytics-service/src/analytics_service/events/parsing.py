"""Turning a Kafka record into a countable event, or into the reason it cannot be counted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf.message import DecodeError

from pm_proto import patient_event_pb2

EVENT_TYPES = ("PATIENT_CREATED", "PATIENT_UPDATED", "PATIENT_DELETED")
ID_MAX = 255


class InvalidReason(StrEnum):
    """Why a record was set aside; stored and sent as a header, instead of the record's content."""

    EMPTY_VALUE = "EMPTY_VALUE"
    UNDECODABLE = "UNDECODABLE"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    BAD_PATIENT_ID = "BAD_PATIENT_ID"
    BAD_EVENT_ID = "BAD_EVENT_ID"
    BAD_OCCURRED_AT = "BAD_OCCURRED_AT"


@dataclass(frozen=True)
class Position:
    """Where a record sits in Kafka; also its deduplication key when it carries no event id."""

    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> str:
        """`topic:partition:offset`, unique per record for the life of the topic."""
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class PatientEvent:
    """A valid event: what is counted (never the patient's name or email)."""

    dedupe_key: str
    event_type: str
    patient_id: str
    occurred_at: datetime | None
    position: Position


@dataclass(frozen=True)
class InvalidRecord:
    """A record that cannot be counted, and why."""

    reason: InvalidReason
    position: Position

    @property
    def dedupe_key(self) -> str:
        """The record's position: a re-delivered invalid record is counted once too."""
        return self.position.key


def _valid_id(value: str) -> bool:
    # PostgreSQL text cannot hold NUL; an over-long id is a producer bug, not something to store.
    return 0 < len(value) <= ID_MAX and "\x00" not in value


def _record_time(timestamp_ms: int | None) -> datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def parse_record(*, position: Position, value: bytes | None, timestamp_ms: int | None) -> PatientEvent | InvalidRecord:
    """Decode a `patient` record; anything but a well-formed event of a known type is an InvalidRecord.

    Protobuf decodes many byte strings (even random ones) into a message of unknown fields, so a record
    only counts when its event_type is one of EVENT_TYPES and it names a patient.
    """
    if not value:
        return InvalidRecord(InvalidReason.EMPTY_VALUE, position)
    try:
        event = patient_event_pb2.PatientEvent.FromString(value)
    except (DecodeError, ValueError):  # ValueError: e.g. invalid UTF-8 in a string field
        return InvalidRecord(InvalidReason.UNDECODABLE, position)
    if event.event_type not in EVENT_TYPES:
        return InvalidRecord(InvalidReason.UNKNOWN_EVENT_TYPE, position)
    if not _valid_id(event.patientId):
        return InvalidRecord(InvalidReason.BAD_PATIENT_ID, position)
    if event.event_id and not _valid_id(event.event_id):
        return InvalidRecord(InvalidReason.BAD_EVENT_ID, position)
    occurred_at = _record_time(timestamp_ms)
    if event.HasField("occurred_at"):
        try:
            occurred_at = event.occurred_at.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            return InvalidRecord(InvalidReason.BAD_OCCURRED_AT, position)
    return PatientEvent(
        # The original producer sends no event_id: its records are deduplicated by position instead.
        dedupe_key=event.event_id or position.key,
        event_type=event.event_type,
        patient_id=event.patientId,
        occurred_at=occurred_at,
        position=position,
    )
