"""Annotated dependency aliases for the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from pm_common.access import Permission
from pm_common.app import from_state
from pm_common.auth import require
from pm_common.tokens import Identity

EngineDep = Annotated[AsyncEngine, Depends(from_state("engine", AsyncEngine))]
# The caller, checked against the permission table (401 without a valid token, 403 for a role that may not).
AnalystDep = Annotated[Identity, Depends(require(Permission.READ_ANALYTICS))]
