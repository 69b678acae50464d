"""GET /health: 200 when the database answers and the consumer is alive, else 503 naming what fails."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from analytics_service.deps import ConsumerDep, EngineDep
from pm_common.database import database_answers

router = APIRouter(tags=["health"])

Status = Literal["UP", "DOWN"]


class ConsumerDetails(BaseModel):
    """Liveness of the Kafka consumer."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    state: str
    problem: str | None
    last_poll_age_seconds: float | None
    assigned_partitions: list[str]


class Health(BaseModel):
    """Overall status, one check per dependency, and the consumer's details."""

    status: Status
    checks: dict[str, Status] = Field(examples=[{"database": "UP", "kafka-consumer": "UP"}])
    consumer: ConsumerDetails


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Cannot serve"}})
async def health(engine: EngineDep, consumer: ConsumerDep) -> JSONResponse:
    """The database answers and the consumer polled within CONSUMER_MAX_POLL_AGE_S (or is still starting)."""
    status = consumer.status()
    checks: dict[str, Status] = {
        "database": "UP" if await database_answers(engine) else "DOWN",
        "kafka-consumer": "UP" if status.healthy else "DOWN",
    }
    ok = all(value == "UP" for value in checks.values())
    body = Health(
        status="UP" if ok else "DOWN",
        checks=checks,
        consumer=ConsumerDetails(
            state=status.state,
            problem=status.problem,
            last_poll_age_seconds=status.last_poll_age_s,
            assigned_partitions=status.assigned_partitions,
        ),
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if ok else 503)
