"""The billing_accounts table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, MetaData, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PATIENT_ID_MAX = 255
NAME_MAX = 255
EMAIL_MAX = 255


class Base(DeclarativeBase):
    """Declarative base whose metadata Alembic compares against the migrations."""

    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )


class BillingAccount(Base):
    """One account per patient; patient_id is kept exactly as the caller sent it."""

    __tablename__ = "billing_accounts"

    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_MAX), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    # Name and email as received (billing needs them); never logged.
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata
