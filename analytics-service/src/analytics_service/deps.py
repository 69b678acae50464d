"""Annotated dependency aliases for the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from pm_common.app import from_state

EngineDep = Annotated[AsyncEngine, Depends(from_state("engine", AsyncEngine))]
