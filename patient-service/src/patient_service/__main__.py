"""`patient-service`: load settings, wait for PostgreSQL, migrate, seed (dev/test), then serve."""

from __future__ import annotations

import asyncio
import logging

from patient_service.config import SERVICE_NAME, Settings
from patient_service.seed import seed_demo_patients
from pm_common.database import create_engine, upgrade_database, wait_for_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

log = logging.getLogger("patient_service")


async def _seed(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await seed_demo_patients(engine)
    finally:
        await engine.dispose()


def prestart(settings: Settings) -> None:
    """Once, before uvicorn forks its workers: database reachable, schema at head, demo data if enabled."""
    asyncio.run(wait_for_database(settings.database_url))
    upgrade_database(settings.database_url, script_location="patient_service:migrations")
    if settings.seed_enabled:
        asyncio.run(_seed(settings.database_url))
    else:
        log.info("demo patients not seeded (SEED_DEMO_DATA off)")


def main() -> None:
    """Console script entry point (the launcher and the Docker image both run it)."""
    settings = load_settings(Settings, SERVICE_NAME)
    configure_logging(SERVICE_NAME, settings.log_level)
    prestart(settings)
    serve("patient_service.main:create_app", settings=settings, service=SERVICE_NAME)


if __name__ == "__main__":
    main()
