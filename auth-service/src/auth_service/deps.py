"""Annotated dependency aliases for the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.passwords import Passwords
from auth_service.config import Settings
from pm_common.app import from_state

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
EngineDep = Annotated[AsyncEngine, Depends(from_state("engine", AsyncEngine))]
PasswordsDep = Annotated[Passwords, Depends(from_state("passwords", Passwords))]
