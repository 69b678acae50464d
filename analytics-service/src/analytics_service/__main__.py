"""Console script `analytics-service`: wait for the database, migrate, then serve (the consumer runs in the app)."""

from __future__ import annotations

from analytics_service.config import Settings
from pm_common.database import prepare_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

SERVICE = "analytics-service"


def main() -> None:
    """Prestart (database reachable, schema at head) and run uvicorn."""
    settings = load_settings(Settings, SERVICE)
    configure_logging(SERVICE, settings.log_level)
    prepare_database(settings.database_url, migrations="analytics_service:migrations")
    serve("analytics_service.main:create_app", settings=settings, service=SERVICE)


if __name__ == "__main__":
    main()
