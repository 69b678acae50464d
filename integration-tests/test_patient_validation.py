"""POST /api/patients validation: the original's messages, every rule, odd bodies never giving a 5xx."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest
from pm_e2e import api

REQUIRED_MESSAGES = {
    "name": "Name is required",
    "email": "Email is required",
    "address": "Address is required",
    "dateOfBirth": "Date of birth is required",
}


def post(client: httpx.Client, auth: dict[str, str], body: object) -> httpx.Response:
    return client.post("/api/patients", json=body, headers=auth)


def test_empty_object_names_every_required_field_at_once(client: httpx.Client, auth: dict[str, str]) -> None:
    response = post(client, auth, {})

    assert response.status_code == 400
    errors = response.json()
    for field, message in REQUIRED_MESSAGES.items():
        assert errors.get(field) == message, errors
    assert "registeredDate" not in errors


@pytest.mark.parametrize("field", list(REQUIRED_MESSAGES))
def test_each_missing_field_has_the_originals_message(client: httpx.Client, auth: dict[str, str], field: str) -> None:
    response = post(client, auth, api.patient_body(**{field: None}))

    assert response.status_code == 400
    assert response.json() == {field: REQUIRED_MESSAGES[field]}


@pytest.mark.parametrize("field", list(REQUIRED_MESSAGES))
@pytest.mark.parametrize("value", [None, ""], ids=["null", "empty"])
def test_null_or_empty_required_field_is_refused(
    client: httpx.Client, auth: dict[str, str], field: str, value: object
) -> None:
    body = api.patient_body()
    body[field] = value

    response = post(client, auth, body)

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {field}, errors
    assert isinstance(errors[field], str)
    assert errors[field]


def test_name_over_100_characters(client: httpx.Client, auth: dict[str, str]) -> None:
    response = post(client, auth, api.patient_body(name="n" * 101))

    assert response.status_code == 400
    assert response.json() == {"name": "Name cannot exceed 100 characters"}


@pytest.mark.parametrize(
    "email",
    ["plainaddress", "@example.com", "user@", "user@@example.com", "user example@example.com", "user@exa mple.com"],
)
def test_invalid_email_should_be_valid(client: httpx.Client, auth: dict[str, str], email: str) -> None:
    response = post(client, auth, api.patient_body(email=email))

    assert response.status_code == 400
    assert response.json() == {"email": "Email should be valid"}


def test_email_over_255_characters_is_refused(client: httpx.Client, auth: dict[str, str]) -> None:
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"  # 313 characters, each part within RFC limits
    assert len(email) > 255

    response = post(client, auth, api.patient_body(email=email))

    assert response.status_code == 400
    assert set(response.json()) == {"email"}


def test_address_over_255_characters_is_refused(client: httpx.Client, auth: dict[str, str]) -> None:
    response = post(client, auth, api.patient_body(address="a" * 256))

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"address"}
    assert isinstance(errors["address"], str)
    assert errors["address"]


def test_address_of_255_characters_is_accepted(client: httpx.Client, auth: dict[str, str]) -> None:
    assert post(client, auth, api.patient_body(address="a" * 255)).status_code == 201


@pytest.mark.parametrize(
    "value",
    [
        (dt.date.today() + dt.timedelta(days=2)).isoformat(),
        "2023-02-30",
        "2023-13-01",
        "17/05/1990",
        "1990-5-17",
        "not-a-date",
        "1990-05-17T10:00:00",
        19900517,
        True,
        [],
        {},
    ],
    ids=["future", "feb-30", "month-13", "dd-mm-yyyy", "unpadded", "text", "datetime", "number", "bool", "list", "obj"],
)
def test_bad_date_of_birth_is_refused(client: httpx.Client, auth: dict[str, str], value: object) -> None:
    response = post(client, auth, api.patient_body(dateOfBirth=value))

    assert response.status_code == 400, response.text
    errors = response.json()
    assert set(errors) == {"dateOfBirth"}, errors
    assert isinstance(errors["dateOfBirth"], str)


@pytest.mark.parametrize("value", ["2023-02-30", "tomorrow", 5], ids=["feb-30", "text", "number"])
def test_bad_registered_date_is_refused(client: httpx.Client, auth: dict[str, str], value: object) -> None:
    response = post(client, auth, api.patient_body(registeredDate=value))

    assert response.status_code == 400
    assert "registeredDate" in response.json()


def test_all_failing_fields_are_reported_together(client: httpx.Client, auth: dict[str, str]) -> None:
    response = post(client, auth, {"name": "n" * 101, "email": "nope", "address": "", "dateOfBirth": "2023-02-30"})

    assert response.status_code == 400
    errors = response.json()
    assert errors["name"] == "Name cannot exceed 100 characters"
    assert errors["email"] == "Email should be valid"
    assert {"address", "dateOfBirth"} <= set(errors)


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", 123), ("name", ["a"]), ("email", {"a": 1}), ("address", 4.5), ("name", True)],
    ids=["name-number", "name-list", "email-object", "address-float", "name-bool"],
)
def test_wrong_json_type_of_a_field_gives_400(
    client: httpx.Client, auth: dict[str, str], field: str, value: object
) -> None:
    response = post(client, auth, api.patient_body(**{field: value}))

    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"name": "x",', b"{'name': 'single quotes'}", b"not json at all", b"\xff\xfe\xfd", b'{"name": "a"}}'],
    ids=["open-brace", "truncated", "single-quotes", "text", "bad-utf8", "trailing-brace"],
)
def test_malformed_json_gives_400_message(client: httpx.Client, auth: dict[str, str], raw: bytes) -> None:
    response = client.post("/api/patients", content=raw, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert isinstance(response.json().get("message"), str)


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"patient"', b"42", b"true", b"[{}]"])
def test_body_that_is_not_an_object_gives_400_message(client: httpx.Client, auth: dict[str, str], raw: bytes) -> None:
    response = client.post("/api/patients", content=raw, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert isinstance(response.json().get("message"), str)


def test_body_over_one_mebibyte_gives_413(client: httpx.Client, auth: dict[str, str]) -> None:
    body = json.dumps(api.patient_body(address="a" * (1024 * 1024 + 10))).encode()

    response = client.post("/api/patients", content=body, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 413


def test_streamed_body_over_one_mebibyte_gives_413(client: httpx.Client, auth: dict[str, str]) -> None:
    """Chunked upload without Content-Length: the limit holds while streaming too."""
    chunk = b"a" * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "address": "'
        for _ in range(20):
            yield chunk
        yield b'"}'

    response = client.post("/api/patients", content=chunks(), headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 413


ODD_BODIES = [
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b"{}", "text/plain", id="text-plain"),
    pytest.param(b"name=x&email=y", "application/x-www-form-urlencoded", id="form"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, "application/json", id="deep-nesting"),
    pytest.param(json.dumps({"name": "a\u0000b"}).encode(), "application/json", id="nul-in-field"),
    pytest.param(b'{"name": "\\ud800"}', "application/json", id="lone-surrogate"),
    pytest.param(json.dumps(api.patient_body(name="nul\u0000name")).encode(), "application/json", id="nul-valid-body"),
    pytest.param(
        json.dumps(api.patient_body(address="nul\u0000addr")).encode(), "application/json", id="nul-in-address"
    ),
    pytest.param(json.dumps(api.patient_body(name="\ud800x")).encode(), "application/json", id="escaped-surrogate"),
    pytest.param(b'{"name": 1e999999}', "application/json", id="huge-number"),
    pytest.param(json.dumps({"name": "x", "extra": {"deep": [1, 2, 3]}}).encode(), "application/json", id="extra"),
    pytest.param(json.dumps(api.patient_body(dateOfBirth="0000-01-01")).encode(), "application/json", id="year-0"),
    pytest.param(json.dumps(api.patient_body(dateOfBirth="9999-12-31")).encode(), "application/json", id="year-9999"),
    pytest.param(json.dumps(api.patient_body(dateOfBirth="0001-01-01")).encode(), "application/json", id="year-1"),
]


@pytest.mark.parametrize(("raw", "content_type"), ODD_BODIES)
def test_odd_bodies_never_give_a_5xx(client: httpx.Client, auth: dict[str, str], raw: bytes, content_type: str) -> None:
    response = client.post("/api/patients", content=raw, headers={**auth, "Content-Type": content_type})

    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    assert response.status_code in (201, 400, 413, 415), response.status_code


@pytest.mark.parametrize(
    "path",
    ["/api/patients/%00", "/api/patients/%ff%fe", "/api/patients/..%2f..%2fhealth", "/api/patients/" + "9" * 5000],
    ids=["nul", "bad-utf8", "dot-dot", "very-long"],
)
def test_odd_ids_never_give_a_5xx(client: httpx.Client, auth: dict[str, str], path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, path, headers=auth, json=api.patient_body() if method == "PUT" else None)
        assert 400 <= response.status_code < 500, (method, response.status_code, response.text[:200])


@pytest.mark.parametrize(
    "query",
    ["?page=-1", "?size=abc", "?sort=name;DROP TABLE patients", "?email=%00"],
    ids=["page", "size", "sort", "nul"],
)
def test_odd_query_strings_on_the_list_never_give_a_5xx(client: httpx.Client, auth: dict[str, str], query: str) -> None:
    response = client.get(f"/api/patients{query}", headers=auth)

    assert response.status_code < 500
