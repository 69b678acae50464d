"""Console script `patient-service`: wait for PostgreSQL, migrate, seed (dev/test), then serve."""

from __future__ import annotations

from patient_service.config import SERVICE, Settings
from patient_service.seed import seed_demo_patients
from pm_common.database import database_prestart
from pm_common.server import run_service


def main() -> None:
    """Run patient-service (the launcher and the Docker image both run this)."""
    run_service(
        name=SERVICE,
        settings_type=Settings,
        app_factory="patient_service.main:create_app",
        prestart=database_prestart(migrations="patient_service:migrations", seed=seed_demo_patients),
    )


if __name__ == "__main__":
    main()
