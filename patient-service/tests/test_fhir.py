"""The FHIR R4B view (/fhir) against a real PostgreSQL: every interaction, every error path, and one patient
seen both ways (the same row, outbox events and audit records as /patients)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from patient_service.fhir.mapping import REGISTERED_DATE_URL
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import issue_token

from .conftest import Service

FHIR = {"content-type": "application/fhir+json"}
TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
REGISTERED_TOMORROW = {"url": REGISTERED_DATE_URL, "valueDate": TOMORROW}
REGISTERED_PATH = f"Patient.extension('{REGISTERED_DATE_URL}')"


def bearer(role: str) -> dict[str, str]:
    key = base64.b64decode(DEMO_JWT_SECRET)
    return {
        "Authorization": "Bearer " + issue_token(key=key, email=f"{role.lower()}@fhir", role=role, lifetime_seconds=600)
    }


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(module_database_url)
    yield engine
    await engine.dispose()


def resource(**overrides: Any) -> dict[str, Any]:
    """A Patient that fits our model (fields override; `...` removes one)."""
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "text": "Ada King Lovelace", "family": "Lovelace", "given": ["Ada", "King"]}],
        "telecom": [{"system": "email", "value": f"ada-{uuid.uuid4().hex[:10]}@example.com"}],
        "address": [{"text": "12 St James's Square, London"}],
        "birthDate": "1815-12-10",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def create(api: Service, **overrides: Any) -> Any:
    response = await api.http.post("/fhir/Patient", json=resource(**overrides), headers=FHIR)
    assert response.status_code == 201, response.text
    return response


def outcome(response: Any, status: int) -> list[dict[str, Any]]:
    """Assert an OperationOutcome with this status; return its issues."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    body = response.json()
    OperationOutcome.model_validate(body)
    issues: list[dict[str, Any]] = body["issue"]
    return issues


async def outbox_of(db: AsyncEngine, patient_id: str) -> list[tuple[str, str]]:
    async with db.connect() as connection:
        rows = await connection.execute(
            text("SELECT destination, event_type FROM outbox WHERE aggregate_id = :id ORDER BY id"),
            {"id": uuid.UUID(patient_id)},
        )
        return [(r.destination, r.event_type) for r in rows]


async def audit_of(api: Service, patient_id: str) -> list[tuple[str, int]]:
    await api.app.state.audit_writer.flush()
    events = (await api.http.get("/audit", params={"patientId": patient_id})).json()["events"]
    return [(e["action"], e["status"]) for e in reversed(events)]


# -- metadata --------------------------------------------------------------------------------------
async def test_capability_statement(api: Service) -> None:
    response = await api.http.get("/fhir/metadata", headers=bearer("STAFF"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.3.0"
    (patient,) = statement["rest"][0]["resource"]
    assert patient["type"] == "Patient"
    assert {i["code"] for i in patient["interaction"]} == {"read", "search-type", "create", "update", "delete"}
    assert {p["name"] for p in patient["searchParam"]} == {"name", "family", "given", "email", "birthdate"}


async def test_fhir_needs_a_token_and_a_role_that_reads_patients(api: Service) -> None:
    missing = await api.http.get("/fhir/metadata", headers={"Authorization": ""})
    assert outcome(missing, 401)[0]["code"] == "login"
    assert missing.headers["www-authenticate"] == "Bearer"
    for path in ("/fhir/metadata", "/fhir/Patient", f"/fhir/Patient/{uuid.uuid4()}"):
        assert outcome(await api.http.get(path, headers=bearer("ANALYST")), 403)[0]["code"] == "forbidden"
    created = await create(api)
    staff_delete = await api.http.delete(f"/fhir/Patient/{created.json()['id']}", headers=bearer("STAFF"))
    outcome(staff_delete, 403)


# -- create, read, one patient two views -----------------------------------------------------------
async def test_create_is_the_same_create_as_rest(api: Service, db: AsyncEngine) -> None:
    sent = resource()
    response = await api.http.post("/fhir/Patient", json=sent, headers=FHIR)
    assert response.status_code == 201, response.text
    created = response.json()
    Patient.model_validate(created)
    patient_id = created["id"]
    assert response.headers["location"] == f"/fhir/Patient/{patient_id}"
    assert response.headers["etag"] == 'W/"1"'
    assert created["meta"]["versionId"] == "1"
    rest = (await api.http.get(f"/patients/{patient_id}")).json()
    assert rest == {
        "id": patient_id,
        "name": "Ada King Lovelace",
        "email": sent["telecom"][0]["value"],
        "address": "12 St James's Square, London",
        "dateOfBirth": "1815-12-10",
        "registeredDate": datetime.now(UTC).date().isoformat(),
    }
    # The same outbox rows (event and billing-account request) and audit record as POST /patients.
    rest_created = await api.create()
    expected_rows = [("patient-event", "PATIENT_CREATED"), ("billing-account", "BILLING_ACCOUNT_REQUESTED")]
    assert await outbox_of(db, patient_id) == expected_rows
    assert await outbox_of(db, rest_created["id"]) == expected_rows
    assert (await audit_of(api, patient_id))[0] == ("CREATE", 201)
    assert (await audit_of(api, rest_created["id"]))[0] == ("CREATE", 201)


async def test_a_rest_patient_reads_as_a_fhir_patient(api: Service) -> None:
    patient = await api.create(name="Grace Brewster Hopper", registeredDate="2020-02-03")
    response = await api.http.get(f"/fhir/Patient/{patient['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.json() == {
        "resourceType": "Patient",
        "id": patient["id"],
        "meta": {"versionId": "1"},
        "extension": [{"url": REGISTERED_DATE_URL, "valueDate": "2020-02-03"}],
        "name": [
            {"use": "official", "text": "Grace Brewster Hopper", "family": "Hopper", "given": ["Grace", "Brewster"]}
        ],
        "telecom": [{"system": "email", "value": patient["email"]}],
        "address": [{"text": patient["address"]}],
        "birthDate": patient["dateOfBirth"],
    }
    assert (await audit_of(api, patient["id"]))[-1] == ("READ", 200)


ROUND_TRIPS = [
    resource(),
    resource(extension=[{"url": REGISTERED_DATE_URL, "valueDate": "2019-07-01"}]),
    resource(name=[{"use": "official", "text": "Madonna", "family": "Madonna"}], birthDate="2000-02-29"),
    resource(
        name=[{"use": "official", "text": "Zoë O'Brien-Łukasz 🩺", "family": "🩺", "given": ["Zoë", "O'Brien-Łukasz"]}]
    ),
]


@pytest.mark.parametrize("sent", ROUND_TRIPS)
async def test_round_trip_of_resources_that_fit(api: Service, sent: dict[str, Any]) -> None:
    created = (await api.http.post("/fhir/Patient", json=sent, headers=FHIR)).json()
    read = (await api.http.get(f"/fhir/Patient/{created['id']}")).json()
    assert read == created
    for element in ("name", "telecom", "address", "birthDate"):
        assert read[element] == sent[element]
    if "extension" in sent:
        assert read["extension"] == sent["extension"]


async def test_what_is_kept_of_a_resource_with_more_than_we_store(api: Service) -> None:
    response = await create(
        api,
        name=[
            {"use": "usual", "text": "Ada"},
            {"use": "official", "given": ["Augusta", "Ada"], "family": "King"},
            {"use": "maiden", "family": "Byron"},
        ],
        telecom=[{"system": "phone", "value": "+44 20 0000"}, resource()["telecom"][0]],
        address=[
            {"use": "work", "text": "Office"},
            {"use": "home", "line": ["12 St James's Square"], "city": "London"},
        ],
        gender="female",
        active=True,
    )
    kept = response.json()
    assert kept["name"] == [
        {"use": "official", "text": "Augusta Ada King", "family": "King", "given": ["Augusta", "Ada"]}
    ]
    assert kept["address"] == [{"text": "12 St James's Square, London"}]
    assert [t["system"] for t in kept["telecom"]] == ["email"]
    assert "gender" not in kept
    assert "active" not in kept


DOES_NOT_FIT = [
    ("no email", {"telecom": ...}, "Patient.telecom"),
    ("only a phone", {"telecom": [{"system": "phone", "value": "123"}]}, "Patient.telecom"),
    ("two emails", {"telecom": [{"system": "email", "value": f"{c}@example.com"} for c in "ab"]}, "Patient.telecom"),
    ("no name", {"name": ...}, "Patient.name"),
    ("a name without text or parts", {"name": [{"use": "official", "prefix": ["Dr"]}]}, "Patient.name[0]"),
    ("no address", {"address": ...}, "Patient.address"),
    ("no birth date", {"birthDate": ...}, "Patient.birthDate"),
    ("a partial birth date", {"birthDate": "1815"}, "Patient.birthDate"),
    ("a birth date in the future", {"birthDate": TOMORROW}, "Patient.birthDate"),
    ("an invalid email", {"telecom": [{"system": "email", "value": "not-an-email"}]}, "Patient.telecom"),
    ("a name over 100 characters", {"name": [{"text": "x" * 101}]}, "Patient.name"),
    ("a registered date in the future", {"extension": [REGISTERED_TOMORROW]}, REGISTERED_PATH),
]  # fmt: skip


@pytest.mark.parametrize(("case", "overrides", "where"), DOES_NOT_FIT, ids=[c[0] for c in DOES_NOT_FIT])
async def test_resources_that_do_not_fit_our_model_are_422(
    api: Service, case: str, overrides: dict[str, Any], where: str
) -> None:
    response = await api.http.post("/fhir/Patient", json=resource(**overrides), headers=FHIR)
    issues = outcome(response, 422)
    assert where in [issue.get("expression", [None])[0] for issue in issues], issues


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"resourceType": "Patient",', "application/fhir+json", 400),
        (b"[]", "application/fhir+json", 400),
        (b'{"resourceType": "Observation"}', "application/fhir+json", 400),
        (b'{"name": []}', "application/fhir+json", 400),
        (b'{"resourceType": "Patient", "name": "Ada"}', "application/fhir+json", 400),
        (b'{"resourceType": "Patient", "unknownElement": 1}', "application/fhir+json", 400),
        (b'{"resourceType": "Patient", "birthDate": "15/12/1815"}', "application/json", 400),
        (b'{"resourceType": "Patient"}', "text/plain", 415),
        (b'{"resourceType": "Patient"}', "application/fhir+xml", 415),
        (b"\xff\xfe", "application/fhir+json", 400),
    ],
)
async def test_bodies_that_are_not_a_patient_resource(
    api: Service, content: bytes, content_type: str, status: int
) -> None:
    response = await api.http.post("/fhir/Patient", content=content, headers={"content-type": content_type})
    outcome(response, status)


async def test_a_taken_email_is_409(api: Service) -> None:
    first = (await create(api)).json()
    again = resource(telecom=[{"system": "email", "value": first["telecom"][0]["value"].upper()}])
    response = await api.http.post("/fhir/Patient", json=again, headers=FHIR)
    assert outcome(response, 409)[0]["code"] == "duplicate"


@pytest.mark.parametrize("patient_id", ["not-a-uuid", str(uuid.uuid4()), "x" * 70])
async def test_unknown_ids_are_404(api: Service, patient_id: str) -> None:
    assert outcome(await api.http.get(f"/fhir/Patient/{patient_id}"), 404)[0]["code"] == "not-found"
    outcome(await api.http.delete(f"/fhir/Patient/{patient_id}"), 404)
    outcome(await api.http.put(f"/fhir/Patient/{patient_id}", json=resource(id=patient_id[:64]), headers=FHIR), 404)


# -- update and delete -----------------------------------------------------------------------------
async def test_update_with_if_match(api: Service, db: AsyncEngine) -> None:
    created = (await create(api, extension=[{"url": REGISTERED_DATE_URL, "valueDate": "2018-01-01"}])).json()
    url = f"/fhir/Patient/{created['id']}"
    changed = {**created, "name": [{"text": "Ada Byron"}], "address": [{"text": "Elsewhere"}]}
    changed["extension"] = [{"url": REGISTERED_DATE_URL, "valueDate": "2000-01-01"}]  # ignored, as PUT /patients
    response = await api.http.put(url, json=changed, headers={**FHIR, "If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert response.headers["etag"] == 'W/"2"'
    assert updated["meta"]["versionId"] == "2"
    assert updated["name"][0]["text"] == "Ada Byron"
    assert updated["extension"][0]["valueDate"] == "2018-01-01"
    stale = await api.http.put(url, json=changed, headers={**FHIR, "If-Match": 'W/"1"'})
    assert outcome(stale, 412)[0]["code"] == "conflict"
    assert (await api.http.get(f"/patients/{created['id']}")).json()["name"] == "Ada Byron"
    assert [e for _, e in await outbox_of(db, created["id"])][-1] == "PATIENT_UPDATED"
    actions = [a for a, _ in await audit_of(api, created["id"])]
    assert actions.count("UPDATE") == 1


async def test_update_needs_the_id_of_the_url(api: Service) -> None:
    created = (await create(api)).json()
    url = f"/fhir/Patient/{created['id']}"
    outcome(await api.http.put(url, json={**created, "id": str(uuid.uuid4())}, headers=FHIR), 400)
    outcome(await api.http.put(url, json={k: v for k, v in created.items() if k != "id"}, headers=FHIR), 400)
    outcome(await api.http.put(url, json={**created, "telecom": []}, headers=FHIR), 422)
    outcome(await api.http.put(url, content=b"{}", headers={"content-type": "text/plain"}), 415)


async def test_delete_with_if_match(api: Service, db: AsyncEngine) -> None:
    created = (await create(api)).json()
    url = f"/fhir/Patient/{created['id']}"
    outcome(await api.http.delete(url, headers={"If-Match": 'W/"7"'}), 412)
    response = await api.http.delete(url, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 204
    outcome(await api.http.get(url), 404)
    assert [e for _, e in await outbox_of(db, created["id"])][-2:] == [
        "PATIENT_DELETED",
        "BILLING_ACCOUNT_CLOSE_REQUESTED",
    ]
    assert ("DELETE", 204) in await audit_of(api, created["id"])


async def test_other_methods_and_paths(api: Service) -> None:
    not_allowed = await api.http.patch(f"/fhir/Patient/{uuid.uuid4()}", json={})
    outcome(not_allowed, 405)
    assert not_allowed.headers["allow"] == "DELETE, GET, PUT"
    outcome(await api.http.get("/fhir/Observation"), 404)
    outcome(await api.http.get("/fhir/Patient/x/_history/1"), 404)


# -- search ----------------------------------------------------------------------------------------
async def people(api: Service, word: str) -> None:
    for given, born in (("Ada", "1815-12-10"), ("Alan", "1912-06-23"), ("Grace", "1906-12-09")):
        await create(api, name=[{"given": [given], "family": f"{word}son"}], birthDate=born)


async def bundle(api: Service, params: Any) -> dict[str, Any]:
    response = await api.http.get("/fhir/Patient", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    body: dict[str, Any] = response.json()
    Bundle.model_validate(body)
    assert (body["resourceType"], body["type"]) == ("Bundle", "searchset")
    return body


def given_names(found: dict[str, Any]) -> list[str]:
    return [entry["resource"]["name"][0]["given"][0] for entry in found.get("entry", [])]


async def test_search_parameters(api: Service) -> None:
    word = "f" + uuid.uuid4().hex[:8]
    await people(api, word)
    assert sorted(given_names(await bundle(api, {"name": word.upper()}))) == ["Ada", "Alan", "Grace"]
    assert given_names(await bundle(api, [("family", word), ("given", "ALAN")])) == ["Alan"]
    assert given_names(await bundle(api, {"name": word, "_sort": "-name"})) == ["Grace", "Alan", "Ada"]
    assert given_names(await bundle(api, {"name": word, "_sort": "birthdate"})) == ["Ada", "Grace", "Alan"]
    assert given_names(await bundle(api, {"name": word, "_sort": "-birthdate"})) == ["Alan", "Grace", "Ada"]
    for birthdate, expected in [
        ("1906-12-09", ["Grace"]),
        ("eq1906", ["Grace"]),
        ("eq1912-06", ["Alan"]),
        ("ge1906-12-09", ["Grace", "Alan"]),
        ("gt1906-12-09", ["Alan"]),
        ("le1906-12-09", ["Ada", "Grace"]),
        ("lt1906", ["Ada"]),
        ("gt1906", ["Alan"]),
    ]:
        found = await bundle(api, {"name": word, "birthdate": birthdate, "_sort": "birthdate"})
        assert given_names(found) == expected, birthdate
        assert found["total"] == len(expected)
    ranged = await bundle(api, [("name", word), ("birthdate", "ge1900"), ("birthdate", "lt1912-06-23")])
    assert given_names(ranged) == ["Grace"]
    email = (await bundle(api, {"name": word, "given": "Ada"}))["entry"][0]["resource"]["telecom"][0]["value"]
    assert given_names(await bundle(api, {"email": email.upper()})) == ["Ada"]
    assert given_names(await bundle(api, {"name": word, "unknown-param": "x", "_format": "json"})) != []


async def test_search_pages_with_links(api: Service) -> None:
    word = "p" + uuid.uuid4().hex[:8]
    await people(api, word)
    first = await bundle(api, {"name": word, "_count": 2, "_sort": "name"})
    assert first["total"] == 3
    assert given_names(first) == ["Ada", "Alan"]
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    assert links["self"].startswith("http://patient-service/fhir/Patient?")
    assert f"name={word}" in links["next"]
    assert "_count=2" in links["next"]
    second = (await api.http.get(links["next"])).json()
    assert given_names(second) == ["Grace"]
    second_links = {link["relation"]: link["url"] for link in second["link"]}
    assert "next" not in second_links
    assert given_names((await api.http.get(second_links["previous"])).json()) == ["Ada", "Alan"]
    only_total = await bundle(api, {"name": word, "_count": 0})
    assert (only_total["total"], only_total.get("entry")) == (3, None)
    assert first["entry"][0]["fullUrl"] == f"http://patient-service/fhir/Patient/{first['entry'][0]['resource']['id']}"


@pytest.mark.parametrize(
    "params",
    [
        {"birthdate": "ne1990"},
        {"birthdate": "1990-13"},
        {"birthdate": "yesterday"},
        {"birthdate": "lt0001-01-01"},
        {"_count": "-1"},
        {"_count": "1001"},
        {"_count": "ten"},
        {"_sort": "email"},
        {"_page": "x"},
        {"name": ""},
        {"email": "a\u0000b"},
    ],
)
async def test_invalid_search_values_are_400(api: Service, params: dict[str, str]) -> None:
    outcome(await api.http.get("/fhir/Patient", params=params), 400)


async def test_search_is_audited_as_a_list(api: Service) -> None:
    word = "a" + uuid.uuid4().hex[:8]
    await people(api, word)
    actor = f"lister-{uuid.uuid4().hex[:6]}@fhir"
    key = base64.b64decode(DEMO_JWT_SECRET)
    token = issue_token(key=key, email=actor, role="STAFF", lifetime_seconds=600)
    await api.http.get("/fhir/Patient", params={"name": word}, headers={"Authorization": f"Bearer {token}"})
    await api.app.state.audit_writer.flush()
    events = (await api.http.get("/audit", params={"actor": actor})).json()["events"]
    assert [(e["action"], e["rows"], e["status"]) for e in events] == [("LIST", 3, 200)]
