"""Annotated dependency aliases for the HTTP views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from billing_service.config import Settings
from billing_service.grpc_server import GrpcServer


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _grpc_server(request: Request) -> GrpcServer:
    server: GrpcServer = request.app.state.grpc_server
    return server


SettingsDep = Annotated[Settings, Depends(_settings)]
GrpcServerDep = Annotated[GrpcServer, Depends(_grpc_server)]
