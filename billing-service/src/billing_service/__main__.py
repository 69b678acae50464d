"""Console script `billing-service`: wait for the database, migrate, then serve HTTP and gRPC."""

from __future__ import annotations

from billing_service.config import Settings
from pm_common.database import prepare_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

SERVICE = "billing-service"


def main() -> None:
    """Prestart (database reachable, schema at head) and run uvicorn; the gRPC server lives in the lifespan."""
    settings = load_settings(Settings, SERVICE)
    configure_logging(SERVICE, settings.log_level)
    prepare_database(settings.database_url, migrations="billing_service:migrations")
    serve("billing_service.main:create_app", settings=settings, service=SERVICE)


if __name__ == "__main__":
    main()
