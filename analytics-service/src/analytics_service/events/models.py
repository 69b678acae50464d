"""Tables: counts per event type, the ids of processed records, counts of records set aside."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base whose metadata Alembic compares against the migrations."""

    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s", "ix": "ix_%(table_name)s_%(column_0_name)s"})


class EventCount(Base):
    """How many distinct events of one type were seen, and when the latest of them happened."""

    __tablename__ = "event_counts"

    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InvalidEventCount(Base):
    """How many records were set aside (sent to the dead-letter topic) for one reason; never their content."""

    __tablename__ = "invalid_event_counts"

    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProcessedEvent(Base):
    """One row per record already counted: the deduplication key, written in the counting transaction.

    event_id is the event's own id, or `topic:partition:offset` for records without one (the original
    producer) and for invalid records. event_type is NULL for invalid records.
    """

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_type: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(255))
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata
