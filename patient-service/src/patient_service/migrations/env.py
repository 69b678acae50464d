"""Alembic environment: the shared online/async runner with this service's metadata."""

from patient_service.db import metadata
from patient_service.outbox import models as _outbox_models  # noqa: F401 (registers the table)
from patient_service.patients import models as _patient_models  # noqa: F401 (registers the table)
from pm_common.database import run_migrations

run_migrations(metadata)
