"""patient-service through the gateway: CRUD with every status code, ids, uniqueness, exact round trips."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
from pm_e2e import api
from pm_e2e.target import Target

FIELDS = ("name", "email", "address", "dateOfBirth")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def assert_patient(actual: dict[str, object], expected: dict[str, object]) -> None:
    uuid.UUID(str(actual["id"]))
    for field in FIELDS:
        assert actual[field] == expected[field], (field, actual[field], expected[field])


def test_create_returns_201_and_the_patient(client: httpx.Client, auth: dict[str, str]) -> None:
    body = api.patient_body()

    response = client.post("/api/patients", json=body, headers=auth)

    assert response.status_code == 201, response.text
    created = response.json()
    assert_patient(created, body)
    assert created["registeredDate"] == body["registeredDate"]
    assert set(created) >= {"id", *FIELDS, "registeredDate"}


def test_registered_date_defaults_to_today(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth, registeredDate=None)

    today = dt.datetime.now(dt.UTC).date()
    registered = dt.date.fromisoformat(created["registeredDate"])
    assert abs((registered - today).days) <= 1  # the server's time zone may differ from UTC by a day


def test_get_by_id_returns_the_patient(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)

    response = client.get(f"/api/patients/{created['id']}", headers=auth)

    assert response.status_code == 200
    assert response.json() == created


def test_list_contains_a_created_patient(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)

    response = client.get("/api/patients", headers=auth)

    assert response.status_code == 200
    assert created in response.json()


def test_update_returns_200_and_keeps_registered_date(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)
    change = api.patient_body(name="Renamed Patient", address="2 Other Road", registeredDate="2001-01-01")

    response = client.put(f"/api/patients/{created['id']}", json=change, headers=auth)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == created["id"]
    assert_patient(updated, change)
    assert updated["registeredDate"] == created["registeredDate"]
    assert client.get(f"/api/patients/{created['id']}", headers=auth).json() == updated


def test_update_may_keep_its_own_email(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)
    change = api.patient_body(email=created["email"].upper(), name="Same Email")

    response = client.put(f"/api/patients/{created['id']}", json=change, headers=auth)

    assert response.status_code == 200, response.text


def test_update_to_an_email_of_another_patient_gives_400(client: httpx.Client, auth: dict[str, str]) -> None:
    first = api.create_patient(client, auth)
    second = api.create_patient(client, auth)

    response = client.put(
        f"/api/patients/{second['id']}", json=api.patient_body(email=first["email"].upper()), headers=auth
    )

    assert response.status_code == 400
    assert isinstance(response.json().get("message"), str)
    assert client.get(f"/api/patients/{second['id']}", headers=auth).json() == second


def test_update_unknown_id_gives_404(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.put(f"/api/patients/{UNKNOWN_ID}", json=api.patient_body(), headers=auth)

    assert response.status_code == 404
    assert isinstance(response.json().get("message"), str)


def test_update_is_validated_like_create(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)

    response = client.put(f"/api/patients/{created['id']}", json={"name": "x" * 101}, headers=auth)

    assert response.status_code == 400
    errors = response.json()
    assert errors["name"] == "Name cannot exceed 100 characters"
    assert {"email", "address", "dateOfBirth"} <= set(errors)


def test_delete_returns_204_then_404(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)

    response = client.delete(f"/api/patients/{created['id']}", headers=auth)

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/patients/{created['id']}", headers=auth).status_code == 404
    assert client.delete(f"/api/patients/{created['id']}", headers=auth).status_code == 404
    assert created not in client.get("/api/patients", headers=auth).json()


def test_deleted_patients_email_can_be_used_again(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)
    assert client.delete(f"/api/patients/{created['id']}", headers=auth).status_code == 204

    assert client.post("/api/patients", json=api.patient_body(email=created["email"]), headers=auth).status_code == 201


def test_get_unknown_id_gives_404_patient_not_found(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.get(f"/api/patients/{uuid.uuid4()}", headers=auth)

    assert response.status_code == 404
    assert response.json() == {"message": "Patient not found"}


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-4000-8000-00000000000g", "x" * 300])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_non_uuid_id_gives_400(client: httpx.Client, auth: dict[str, str], method: str, bad_id: str) -> None:
    response = client.request(
        method, f"/api/patients/{bad_id}", headers=auth, json=api.patient_body() if method == "PUT" else None
    )

    assert response.status_code == 400, response.text
    assert isinstance(response.json().get("message"), str)


def test_duplicate_email_gives_400_email_address_already_exists(client: httpx.Client, auth: dict[str, str]) -> None:
    created = api.create_patient(client, auth)

    response = client.post("/api/patients", json=api.patient_body(email=created["email"]), headers=auth)

    assert response.status_code == 400
    assert response.json() == {"message": "Email address already exists"}


def test_email_uniqueness_ignores_case(client: httpx.Client, auth: dict[str, str]) -> None:
    local = f"Case.{uuid.uuid4().hex}"
    api.create_patient(client, auth, email=f"{local}@Example.COM")

    for variant in (f"{local.lower()}@example.com", f"{local.upper()}@EXAMPLE.COM"):
        response = client.post("/api/patients", json=api.patient_body(email=variant), headers=auth)
        assert response.status_code == 400, (variant, response.text)
        assert response.json() == {"message": "Email address already exists"}


async def test_concurrent_creates_with_one_email_give_exactly_one_201(target: Target, auth: dict[str, str]) -> None:
    email = api.unique_email("race")
    variants = [email, email.upper(), email.capitalize()] * 4  # 12 requests, three spellings

    async with httpx.AsyncClient(base_url=target.base_url, timeout=api.HTTP_TIMEOUT) as client:
        responses = await asyncio.gather(
            *(client.post("/api/patients", json=api.patient_body(email=v), headers=auth) for v in variants)
        )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [400] * (len(variants) - 1), statuses
    assert all(r.json() == {"message": "Email address already exists"} for r in responses if r.status_code == 400)


ODD_TEXT = [
    pytest.param("Zoë Ñúñez-Åström", id="latin-accents"),
    pytest.param("李小龍 محمد Ελένη Дмитрий", id="scripts"),
    pytest.param("Emoji 🚀👩‍⚕️ Patient", id="emoji-zwj"),
    pytest.param("e\u0301 combining and \u00e9 precomposed", id="combining"),
    pytest.param('O\'Brien "The Quote" `tick`', id="quotes"),
    pytest.param("Robert'); DROP TABLE patients;--", id="sql-drop"),
    pytest.param("' OR '1'='1", id="sql-or"),
    pytest.param("%s %d {0} ${name} \\N \\x00", id="format-strings"),
    pytest.param("<script>alert(1)</script>", id="html"),
    pytest.param("x" * 100, id="exactly-100"),
]


@pytest.mark.parametrize("name", ODD_TEXT)
def test_odd_but_valid_text_round_trips_exactly(client: httpx.Client, auth: dict[str, str], name: str) -> None:
    body = api.patient_body(name=name, address=f"{name}, Line 2 \u2013 «Straße» 12/3")

    response = client.post("/api/patients", json=body, headers=auth)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == name
    assert created["address"] == body["address"]
    fetched = client.get(f"/api/patients/{created['id']}", headers=auth).json()
    assert fetched["name"] == name
    assert fetched["address"] == body["address"]
    assert created in client.get("/api/patients", headers=auth).json()


def test_surrounding_whitespace_is_kept(client: httpx.Client, auth: dict[str, str]) -> None:
    """Exact round trip includes leading/trailing spaces (the original stored text as given)."""
    body = api.patient_body(name="  spaced name  ", address=" 1 Spaced Street\t")

    created = api.create_patient(client, auth, name=body["name"], address=body["address"])

    assert (created["name"], created["address"]) == (body["name"], body["address"])


def test_plus_tagged_and_subdomain_email_round_trips(client: httpx.Client, auth: dict[str, str]) -> None:
    email = f"first.last+{uuid.uuid4().hex[:10]}@mail.example.co.uk"

    created = api.create_patient(client, auth, email=email)

    assert created["email"] == email
    assert client.get(f"/api/patients/{created['id']}", headers=auth).json()["email"] == email
