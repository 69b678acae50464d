"""Annotated dependency aliases for the HTTP views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from analytics_service.config import Settings
from analytics_service.consumer import EventConsumer


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _consumer(request: Request) -> EventConsumer:
    consumer: EventConsumer = request.app.state.consumer
    return consumer


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
ConsumerDep = Annotated[EventConsumer, Depends(_consumer)]
