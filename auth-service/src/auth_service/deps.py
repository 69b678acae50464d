"""Annotated dependency aliases for the views."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.auth.passwords import Passwords
from auth_service.auth.tokens import Tokens
from auth_service.config import Settings


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _engine(request: Request) -> AsyncEngine:
    return cast(AsyncEngine, request.app.state.engine)


def _passwords(request: Request) -> Passwords:
    return cast(Passwords, request.app.state.passwords)


def _tokens(request: Request) -> Tokens:
    return cast(Tokens, request.app.state.tokens)


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
TokensDep = Annotated[Tokens, Depends(_tokens)]
