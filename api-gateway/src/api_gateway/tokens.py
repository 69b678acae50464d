"""Claims as header values (verification itself is pm_common.tokens.TokenVerifier, shared with the services)."""

from __future__ import annotations

from urllib.parse import quote


def header_value(value: str) -> str:
    """A claim as a header value: printable ASCII as is, anything else percent-encoded UTF-8."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe="")
