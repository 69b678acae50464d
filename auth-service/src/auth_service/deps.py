"""Annotated dependency aliases for the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.passwords import Passwords
from auth_service.auth.throttle import LoginThrottle
from auth_service.config import Settings
from pm_common.app import from_state
from pm_common.http import client_address

SettingsDep = Annotated[Settings, Depends(from_state("settings", Settings))]
EngineDep = Annotated[AsyncEngine, Depends(from_state("engine", AsyncEngine))]
PasswordsDep = Annotated[Passwords, Depends(from_state("passwords", Passwords))]
ThrottleDep = Annotated[LoginThrottle, Depends(from_state("throttle", LoginThrottle))]


async def _client_address(request: Request) -> str:
    return client_address(request.scope)


# Who is logging in, for the per-client throttle: the gateway's X-Forwarded-For hop, else the peer.
ClientAddressDep = Annotated[str, Depends(_client_address)]
