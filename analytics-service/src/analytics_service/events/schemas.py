"""Wire shapes of the analytics API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class SummaryResponse(BaseModel):
    """`GET /analytics/summary`: each event counted once, whatever how often Kafka delivered it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    total_events: int = Field(description="Valid events of every type")
    events_by_type: dict[str, int] = Field(
        description="PATIENT_CREATED, PATIENT_UPDATED and PATIENT_DELETED, zeros included",
        examples=[{"PATIENT_CREATED": 15, "PATIENT_UPDATED": 2, "PATIENT_DELETED": 1}],
    )
    invalid_events: int = Field(description="Records that could not be parsed, set aside on the dead-letter topic")
    last_event_at: datetime | None = Field(description="When the latest counted event happened (UTC)")
