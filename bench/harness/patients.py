"""The patients the bench creates: request bodies and an authorised client session for the gateway."""

from __future__ import annotations

import aiohttp


def patient_body(*, name: str, email: str, address: str, date_of_birth: str) -> dict[str, str]:
    """A create-patient request body (the e-mail must be one no patient has yet)."""
    return {"name": name, "email": email, "address": address, "dateOfBirth": date_of_birth}


def gateway_session(token: str, *, timeout_seconds: float, connections: int) -> aiohttp.ClientSession:
    """A client session sending `token` as a Bearer token, at most `connections` at once (0: no limit)."""
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        connector=aiohttp.TCPConnector(limit=connections),
    )
