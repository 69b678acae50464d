"""Entry point: settings -> serve (the gateway has no database and no prestart)."""

from __future__ import annotations

from api_gateway.config import Settings
from pm_common.logging import configure_logging
from pm_common.server import serve
from pm_common.settings import load_settings

SERVICE = "api-gateway"


def main() -> None:
    """Run api-gateway (the console script `api-gateway`)."""
    settings = load_settings(Settings, SERVICE)
    configure_logging(SERVICE, settings.log_level)
    serve("api_gateway.main:create_app", settings=settings, service=SERVICE)


if __name__ == "__main__":
    main()
