"""Console script `analytics-service`: wait for PostgreSQL, migrate, then serve (the consumer runs in the app)."""

from __future__ import annotations

from analytics_service.config import SERVICE, Settings
from pm_common.database import database_prestart
from pm_common.server import run_service


def main() -> None:
    """Run analytics-service (the launcher and the Docker image both run this)."""
    run_service(
        name=SERVICE,
        settings_type=Settings,
        app_factory="analytics_service.main:create_app",
        prestart=database_prestart(migrations="analytics_service:migrations"),
    )


if __name__ == "__main__":
    main()
