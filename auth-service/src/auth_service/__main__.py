"""Entry point: settings -> wait for PostgreSQL -> migrations -> demo seed -> serve."""

from __future__ import annotations

import asyncio

from auth_service.auth.service import seed_demo_user
from auth_service.config import Settings
from pm_common.database import create_engine, upgrade_database, wait_for_database
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

SERVICE = "auth-service"


async def _seed(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        await seed_demo_user(engine=engine)
    finally:
        await engine.dispose()


def main() -> None:
    """Run auth-service (the console script `auth-service`)."""
    settings = load_settings(Settings, SERVICE)
    configure_logging(SERVICE, settings.log_level)
    asyncio.run(wait_for_database(settings.database_url))
    upgrade_database(settings.database_url, script_location="auth_service:migrations")
    if settings.seed_enabled:
        asyncio.run(_seed(settings.database_url))
    serve("auth_service.main:create_app", settings=settings, service=SERVICE)


if __name__ == "__main__":
    main()
