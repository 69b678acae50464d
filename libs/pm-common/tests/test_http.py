"""The shared HTTP pieces: error shape, 413 limit (by header and by stream), access log without bodies."""

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from pm_common.http import (
    AccessLogMiddleware,
    BodySizeLimitMiddleware,
    DomainError,
    NotFoundError,
    client_address,
    install_error_handlers,
)


class Thing(BaseModel):
    name: str = Field(max_length=5)
    size: int


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, field_overrides={"name": {"missing": "Name is required"}})

    @app.post("/things")
    async def create(thing: Thing) -> dict[str, str]:
        return {"name": thing.name}

    @app.get("/things/{number}")
    async def get(number: int) -> dict[str, int]:
        if number == 0:
            raise NotFoundError("Thing not found")
        if number == 1:
            raise DomainError("Thing is busy", status_code=409)
        return {"number": number}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=100)
    app.add_middleware(AccessLogMiddleware)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://test") as c:
        yield c


async def test_every_failing_field_at_once(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"size": "big"})
    assert response.status_code == 400
    body = response.json()
    assert body["name"] == "Name is required"
    assert "size" in body


async def test_malformed_json_is_a_400_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"message": "Malformed JSON request"}


async def test_a_body_that_is_not_an_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json=[1, 2])
    assert response.status_code == 400
    assert "message" in response.json()


async def test_bad_path_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/abc")
    assert response.status_code == 400
    assert response.json() == {"message": "Invalid path parameter 'number'"}


async def test_domain_errors(client: httpx.AsyncClient) -> None:
    assert (await client.get("/things/0")).json() == {"message": "Thing not found"}
    busy = await client.get("/things/1")
    assert (busy.status_code, busy.json()) == (409, {"message": "Thing is busy"})


async def test_413_by_content_length(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", content=b"x" * 101, headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_413_while_streaming_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 30

    response = await client.post("/things", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_access_log_line_has_no_body_or_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="access"):
        await client.post(
            "/things?email=secret@example.com", json={"name": "Jane", "size": 1}, headers={"x-request-id": "req-1"}
        )
    (record,) = [r for r in caplog.records if r.name == "access"]
    assert (record.method, record.path, record.status, record.request_id) == ("POST", "/things", 200, "req-1")  # type: ignore[attr-defined]
    assert "secret@example.com" not in caplog.text
    assert "Jane" not in caplog.text


async def test_a_405_allows_every_method_of_the_path() -> None:
    """Starlette names only the first matching route's methods; a path served by three routes allows all three."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things/{thing}")
    async def read(thing: str) -> dict[str, str]:
        return {}

    @app.put("/things/{thing}")
    async def replace(thing: str) -> dict[str, str]:
        return {}

    @app.delete("/things/{thing}")
    async def remove(thing: str) -> dict[str, str]:
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/things/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PUT"


@pytest.mark.parametrize(
    ("forwarded_for", "peer", "expected"),
    [
        pytest.param([], "127.0.0.1", "127.0.0.1", id="direct"),
        pytest.param([], None, "unknown", id="no-peer"),
        pytest.param(["10.0.0.1"], "172.18.0.5", "10.0.0.1", id="gateway"),
        pytest.param(["1.2.3.4, 10.0.0.1"], "172.18.0.5", "10.0.0.1", id="last-hop"),
        pytest.param(["1.2.3.4", "10.0.0.1 "], "172.18.0.5", "10.0.0.1", id="last-header"),
        pytest.param(["10.0.0.1", " , "], "172.18.0.5", "10.0.0.1", id="empty-last-header"),
        pytest.param(["", ""], "172.18.0.5", "172.18.0.5", id="only-empty"),
    ],
)
def test_client_address(forwarded_for: list[str], peer: str | None, expected: str) -> None:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    scope = {"headers": headers, "client": (peer, 1234) if peer else None}
    assert client_address(scope) == expected
