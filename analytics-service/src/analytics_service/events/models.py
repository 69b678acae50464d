"""Tables: counts per event type, the ids of processed records, counts of records set aside."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Table, Text, func

from pm_common.database import new_metadata

metadata = new_metadata()

# How many distinct events of one type were seen, and when the latest of them happened.
event_counts = Table(
    "event_counts",
    metadata,
    Column("event_type", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False, server_default="0"),
    Column("last_event_at", DateTime(timezone=True)),
)

# How many records were set aside (sent to the dead-letter topic) for one reason; never their content.
invalid_event_counts = Table(
    "invalid_event_counts",
    metadata,
    Column("reason", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False, server_default="0"),
    Column("last_at", DateTime(timezone=True)),
)

# One row per record already counted: the deduplication key, written in the counting transaction.
# event_id is the event's own id, or `topic:partition:offset` for records without one (the original
# producer) and for invalid records. event_type is NULL for invalid records.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("event_type", String(64)),
    Column("patient_id", String(255)),
    Column("topic", String(255), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
