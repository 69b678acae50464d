"""Console script `billing-service`: wait for PostgreSQL, migrate, then serve HTTP and gRPC."""

from __future__ import annotations

from billing_service.config import SERVICE, Settings
from pm_common.database import database_prestart
from pm_common.server import run_service


def main() -> None:
    """Run billing-service (the launcher and the Docker image both run this)."""
    run_service(
        name=SERVICE,
        settings_type=Settings,
        app_factory="billing_service.main:create_app",
        prestart=database_prestart(migrations="billing_service:migrations"),
    )


if __name__ == "__main__":
    main()
