"""Through the gateway: the search of /api/patients (filters, sort, Link paging), ETag/If-Match, PATCH, and the
FHIR R4B view under /fhir (same JWT and roles)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest
from pm_e2e import api

FHIR = {"content-type": "application/fhir+json"}
MERGE = {"content-type": "application/merge-patch+json"}


def as_role(jwt_secret: str, role: str) -> dict[str, str]:
    return api.bearer(api.forge_token(jwt_secret, role=role, sub=f"{role.lower()}@fhir-it"))


def people(client: httpx.Client, auth: dict[str, str], word: str) -> list[dict[str, Any]]:
    rows = [
        ("Ada", "1815-12-10", "2020-01-03"),
        ("Alan", "1912-06-23", "2020-01-01"),
        ("Grace", "1906-12-09", "2020-01-02"),
    ]
    return [
        api.create_patient(client, auth, name=f"{first} {word}", dateOfBirth=born, registeredDate=registered)
        for first, born, registered in rows
    ]


def first_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["name"].split()[0] for p in response.json()]


def links(response: httpx.Response) -> dict[str, str]:
    found = {}
    for part in response.headers["link"].split(","):
        target, _, rel = part.partition(";")
        found[rel.strip().removeprefix('rel="').removesuffix('"')] = target.strip()[1:-1]
    return found


# -- REST search ---------------------------------------------------------------------------------
def test_search_filters_and_sorts(client: httpx.Client, auth: dict[str, str]) -> None:
    word = "it" + uuid.uuid4().hex[:10]
    created = people(client, auth, word)
    assert first_names(client.get("/api/patients", params={"name": word.upper()}, headers=auth)) == [
        "Alan",
        "Grace",
        "Ada",
    ]
    assert first_names(client.get("/api/patients", params={"name": word, "sort": "-name"}, headers=auth)) == [
        "Grace",
        "Alan",
        "Ada",
    ]
    assert first_names(client.get("/api/patients", params={"name": word, "sort": "dateOfBirth"}, headers=auth)) == [
        "Ada",
        "Grace",
        "Alan",
    ]
    born = client.get(
        "/api/patients", params={"name": word, "bornAfter": "1906-12-09", "bornBefore": "1912-06-23"}, headers=auth
    )
    assert sorted(first_names(born)) == ["Alan", "Grace"]
    registered = client.get("/api/patients", params={"name": word, "registeredAfter": "2020-01-02"}, headers=auth)
    assert sorted(first_names(registered)) == ["Ada", "Grace"]
    email = client.get("/api/patients", params={"email": created[0]["email"].upper()}, headers=auth)
    assert email.json() == [created[0]]
    assert client.get("/api/patients", params={"sort": "nope"}, headers=auth).status_code == 400
    assert client.get("/api/patients", params={"bornAfter": "1990-02-30"}, headers=auth).json() == {
        "message": "Invalid query parameter 'bornAfter'"
    }  # fmt: skip


def test_paging_links_carry_the_public_path_and_the_query(client: httpx.Client, auth: dict[str, str]) -> None:
    word = "it" + uuid.uuid4().hex[:10]
    people(client, auth, word)
    first = client.get("/api/patients", params={"name": word, "sort": "name", "size": 2}, headers=auth)
    assert first_names(first) == ["Ada", "Alan"]
    assert first.headers["x-total-count"] == "3"
    next_link = links(first)["next"]
    assert urlsplit(next_link).path == "/api/patients"
    assert dict(parse_qsl(urlsplit(next_link).query)) == {"name": word, "sort": "name", "page": "1", "size": "2"}
    second = client.get(urljoin(str(first.request.url), next_link), headers=auth)
    assert first_names(second) == ["Grace"]
    assert "next" not in links(second)
    assert urlsplit(links(second)["prev"]).path == "/api/patients"


# -- ETag, If-Match, PATCH -----------------------------------------------------------------------
def test_etag_if_match_and_patch(client: httpx.Client, auth: dict[str, str]) -> None:
    patient = api.create_patient(client, auth)
    url = f"/api/patients/{patient['id']}"
    read = client.get(url, headers=auth)
    assert read.headers["etag"] == 'W/"1"'
    patched = client.patch(url, content=b'{"address": "2 Patch Road"}', headers={**auth, **MERGE, "If-Match": 'W/"1"'})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**patient, "address": "2 Patch Road"}
    assert patched.headers["etag"] == 'W/"2"'
    body = {k: patient[k] for k in ("name", "email", "address", "dateOfBirth")}
    stale = client.put(url, json=body, headers={**auth, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert set(stale.json()) == {"message"}
    assert client.delete(url, headers={**auth, "If-Match": 'W/"1"'}).status_code == 412
    wrong_type = client.patch(url, json={"address": "x"}, headers=auth)
    assert wrong_type.status_code == 415
    invalid = client.patch(url, content=b'{"email": "nope"}', headers={**auth, **MERGE})
    assert (invalid.status_code, invalid.json()) == (400, {"email": "Email should be valid"})
    assert client.put(url, json=body, headers={**auth, "If-Match": 'W/"2"'}).headers["etag"] == 'W/"3"'
    assert client.delete(url, headers={**auth, "If-Match": 'W/"3"'}).status_code == 204


# -- FHIR ------------------------------------------------------------------------------------------
def fhir_patient(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "given": ["Ada"], "family": "Lovelace"}],
        "telecom": [{"system": "email", "value": api.unique_email("fhir")}],
        "address": [{"text": "12 St James's Square, London"}],
        "birthDate": "1815-12-10",
    }
    body.update(overrides)
    return body


def test_fhir_needs_the_token_and_the_role(client: httpx.Client, jwt_secret: str) -> None:
    assert client.get("/fhir/metadata").status_code == 401
    assert client.get("/fhir/Patient", headers=as_role(jwt_secret, "ANALYST")).status_code == 403
    metadata = client.get("/fhir/metadata", headers=as_role(jwt_secret, "STAFF"))
    assert metadata.status_code == 200
    assert metadata.headers["content-type"] == "application/fhir+json"
    assert metadata.json()["fhirVersion"] == "4.3.0"
    assert metadata.headers["cache-control"] == "no-store"


def test_fhir_create_read_update_delete(client: httpx.Client, auth: dict[str, str], jwt_secret: str) -> None:
    sent = fhir_patient()
    created = client.post("/fhir/Patient", json=sent, headers={**auth, **FHIR})
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    assert created.headers["location"] == f"/fhir/Patient/{patient_id}"
    assert created.headers["etag"] == 'W/"1"'
    # One patient, two views.
    rest = client.get(f"/api/patients/{patient_id}", headers=auth).json()
    assert (rest["name"], rest["email"], rest["dateOfBirth"]) == (
        "Ada Lovelace",
        sent["telecom"][0]["value"],
        "1815-12-10",
    )
    read = client.get(f"/fhir/Patient/{patient_id}", headers=auth)
    assert read.json()["name"][0] == {"use": "official", "text": "Ada Lovelace", "family": "Lovelace", "given": ["Ada"]}
    assert read.json()["meta"]["versionId"] == "1"

    changed = {**read.json(), "address": [{"text": "Somewhere else"}]}
    updated = client.put(f"/fhir/Patient/{patient_id}", json=changed, headers={**auth, **FHIR, "If-Match": 'W/"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"'
    stale = client.put(f"/fhir/Patient/{patient_id}", json=changed, headers={**auth, **FHIR, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"

    staff_delete = client.delete(f"/fhir/Patient/{patient_id}", headers=as_role(jwt_secret, "STAFF"))
    assert staff_delete.status_code == 403
    assert client.delete(f"/fhir/Patient/{patient_id}", headers=auth).status_code == 204
    gone = client.get(f"/fhir/Patient/{patient_id}", headers=auth)
    assert (gone.status_code, gone.json()["resourceType"]) == (404, "OperationOutcome")


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (fhir_patient(telecom=[]), "application/fhir+json", 422),
        (fhir_patient(birthDate="1815"), "application/fhir+json", 422),
        ({"resourceType": "Observation"}, "application/fhir+json", 400),
        (fhir_patient(name="Ada"), "application/fhir+json", 400),
        (fhir_patient(), "text/plain", 415),
    ],
)
def test_fhir_errors_are_operation_outcomes(
    client: httpx.Client, auth: dict[str, str], body: dict[str, Any], content_type: str, status: int
) -> None:
    response = client.post("/fhir/Patient", content=json.dumps(body), headers={**auth, "content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_fhir_search_bundle_with_paging(client: httpx.Client, auth: dict[str, str]) -> None:
    word = "fh" + uuid.uuid4().hex[:10]
    people(client, auth, word)
    first = client.get("/fhir/Patient", params={"name": word, "_count": 2, "_sort": "birthdate"}, headers=auth)
    assert first.status_code == 200, first.text
    bundle = first.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 3)
    assert [e["resource"]["name"][0]["given"][0] for e in bundle["entry"]] == ["Ada", "Grace"]
    relations = {link["relation"]: link["url"] for link in bundle["link"]}
    assert urlsplit(relations["next"]).path == "/fhir/Patient"
    second = client.get(relations["next"], headers=auth).json()
    assert [e["resource"]["name"][0]["given"][0] for e in second["entry"]] == ["Alan"]
    assert "previous" in {link["relation"] for link in second["link"]}
    born = client.get("/fhir/Patient", params={"family": word, "birthdate": "ge1900"}, headers=auth).json()
    assert born["total"] == 2
    assert client.get("/fhir/Patient", params={"birthdate": "ne1900"}, headers=auth).status_code == 400
