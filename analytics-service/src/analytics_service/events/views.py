"""GET /analytics/summary (through the gateway: /api/analytics/summary, JWT required there)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from analytics_service.deps import EngineDep
from analytics_service.events import service
from analytics_service.events.schemas import SummaryResponse
from pm_common.http import DomainError

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get(
    "/summary",
    response_model=SummaryResponse,
    responses={503: {"description": "The analytics database is unavailable"}},
)
async def get_summary(engine: EngineDep) -> SummaryResponse:
    """What the consumer has counted so far, read from this service's own database."""
    try:
        result = await service.summary(engine)
    except Exception as error:
        # Driver errors raised while connecting (server starting, too many connections) arrive
        # unwrapped; like SQLAlchemy's and socket errors they mean "cannot answer now", not a bug here.
        if isinstance(error, OSError | SQLAlchemyError) or hasattr(error, "sqlstate"):
            raise DomainError("Analytics database unavailable", status_code=503) from error
        raise
    return SummaryResponse(
        total_events=result.total_events,
        events_by_type=result.events_by_type,
        invalid_events=result.invalid_events,
        last_event_at=result.last_event_at,
    )
