"""`patient-service`: load settings, wait for PostgreSQL, migrate, seed (dev/test), then serve."""

from __future__ import annotations

import logging

from patient_service.config import SERVICE_NAME, Settings
from patient_service.seed import seed_demo_patients
from pm_common.database import prepare_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

log = logging.getLogger("patient_service")


def prestart(settings: Settings) -> None:
    """Once, before uvicorn forks its workers: database reachable, schema at head, demo data if enabled."""
    if not settings.seed_enabled:
        log.info("demo patients not seeded (SEED_DEMO_DATA off)")
    prepare_database(
        settings.database_url,
        migrations="patient_service:migrations",
        seed=seed_demo_patients if settings.seed_enabled else None,
    )


def main() -> None:
    """Console script entry point (the launcher and the Docker image both run it)."""
    settings = load_settings(Settings, SERVICE_NAME)
    configure_logging(SERVICE_NAME, settings.log_level)
    prestart(settings)
    serve("patient_service.main:create_app", settings=settings, service=SERVICE_NAME)


if __name__ == "__main__":
    main()
