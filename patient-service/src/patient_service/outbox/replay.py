"""Re-queue PARKED outbox rows: `python -m patient_service.outbox.replay [--destination D] [EVENT_ID ...]`.

Run it after fixing what made the rows poison (for example billing refused a request it now accepts).
The rows get state PENDING, attempts 0 and are delivered by the next relay pass of any running replica.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Sequence

from pydantic import Field
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from patient_service.config import SERVICE
from patient_service.outbox.models import Destination, State, outbox
from pm_common.database import create_engine
from pm_common.logging import configure_logging
from pm_common.settings import DatabaseSettings, load_settings


class ReplaySettings(DatabaseSettings):
    """What the command reads from the environment: the service's database (no key, no ports)."""

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")


async def requeue_parked(
    engine: AsyncEngine, *, destination: Destination | None = None, event_ids: Sequence[uuid.UUID] = ()
) -> int:
    """Set PARKED rows (all, one destination's, or the given event ids) back to PENDING; return the count."""
    statement = (
        update(outbox)
        .where(outbox.c.state == State.PARKED.value)
        .values(state=State.PENDING.value, attempts=0, next_attempt_at=func.now())
    )
    if destination is not None:
        statement = statement.where(outbox.c.destination == destination.value)
    if event_ids:
        statement = statement.where(outbox.c.event_id.in_(list(event_ids)))
    async with engine.begin() as connection:
        result = await connection.execute(statement)
    return int(result.rowcount)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point; prints how many rows were re-queued."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--destination", choices=[d.value for d in Destination])
    parser.add_argument("event_ids", nargs="*", type=uuid.UUID, metavar="EVENT_ID")
    args = parser.parse_args(argv)
    settings = load_settings(ReplaySettings, SERVICE)
    configure_logging(SERVICE, settings.log_level)

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            destination = Destination(args.destination) if args.destination else None
            return await requeue_parked(engine, destination=destination, event_ids=args.event_ids)
        finally:
            await engine.dispose()

    print(f"re-queued {asyncio.run(run())} parked outbox row(s)")


if __name__ == "__main__":
    main()
