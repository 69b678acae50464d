"""Console script `auth-service`: wait for PostgreSQL, migrate, seed the demo user (dev/test), serve."""

from __future__ import annotations

from auth_service.auth.service import seed_demo_user
from auth_service.config import SERVICE, Settings
from pm_common.database import database_prestart
from pm_common.server import run_service


def main() -> None:
    """Run auth-service (the launcher and the Docker image both run this)."""
    run_service(
        name=SERVICE,
        settings_type=Settings,
        app_factory="auth_service.main:create_app",
        prestart=database_prestart(migrations="auth_service:migrations", seed=seed_demo_user),
    )


if __name__ == "__main__":
    main()
