"""Console script `api-gateway`: settings, then serve (the gateway has no database and no prestart)."""

from __future__ import annotations

from api_gateway.config import SERVICE, Settings
from pm_common.server import run_service


def main() -> None:
    """Run api-gateway (the launcher and the Docker image both run this)."""
    run_service(
        name=SERVICE,
        settings_type=Settings,
        app_factory="api_gateway.main:create_app",
        http="api_gateway.protocol:EdgeHttpToolsProtocol",  # slow or oversized request headers: 408 / 431
    )


if __name__ == "__main__":
    main()
