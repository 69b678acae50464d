"""GET /analytics/summary (through the gateway: /api/analytics/summary, JWT required there)."""

from __future__ import annotations

from fastapi import APIRouter

from analytics_service.deps import AnalystDep, EngineDep
from analytics_service.events import service
from analytics_service.events.schemas import SummaryResponse

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get(
    "/summary",
    response_model=SummaryResponse,
    responses={
        401: {"description": "No valid bearer token (WWW-Authenticate says why)"},
        403: {"description": "The token's role may not read analytics"},
        503: {"description": "The analytics database is unavailable"},
    },
)
async def get_summary(caller: AnalystDep, engine: EngineDep) -> SummaryResponse:
    """What the consumer has counted so far, read from this service's own database."""
    result = await service.summary(engine)  # database unavailable: 503 (pm_common's error handlers)
    return SummaryResponse(
        total_events=result.total_events,
        events_by_type=result.events_by_type,
        invalid_events=result.invalid_events,
        last_event_at=result.last_event_at,
    )
