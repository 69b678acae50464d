"""Entry point: settings -> wait for PostgreSQL -> migrations -> demo seed -> serve."""

from __future__ import annotations

from auth_service.auth.service import seed_demo_user
from auth_service.config import Settings
from pm_common.database import prepare_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

SERVICE = "auth-service"


def main() -> None:
    """Run auth-service (the console script `auth-service`)."""
    settings = load_settings(Settings, SERVICE)
    configure_logging(SERVICE, settings.log_level)
    prepare_database(
        settings.database_url,
        migrations="auth_service:migrations",
        seed=(lambda engine: seed_demo_user(engine=engine)) if settings.seed_enabled else None,
    )
    serve("auth_service.main:create_app", settings=settings, service=SERVICE)


if __name__ == "__main__":
    main()
