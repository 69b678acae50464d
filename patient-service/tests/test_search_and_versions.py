"""GET /patients search, paging links, ETag/If-Match and PATCH (merge patch), against a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from patient_service.audit.middleware import patient_routes
from patient_service.audit.models import Action
from patient_service.patients.preconditions import merge_patch, parse_if_match

from .conftest import Service

MERGE = {"content-type": "application/merge-patch+json"}
FUTURE = "Date of birth cannot be in the future"
NOT_MERGE_PATCH = "Content-Type must be application/merge-patch+json"
ID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(module_database_url)
    yield engine
    await engine.dispose()


def tag() -> str:
    """A word no other patient's name has: searches of one test see only that test's patients."""
    return "q" + uuid.uuid4().hex[:10]


async def people(api: Service, word: str) -> list[dict[str, Any]]:
    """Five patients whose names hold `word`, with distinct birth and registration dates."""
    rows = [
        ("Ada", "1815-12-10", "2020-01-05"),
        ("grace", "1906-12-09", "2020-01-03"),
        ("Alan", "1912-06-23", "2020-01-04"),
        ("barbara", "1939-11-03", "2020-01-01"),
        ("Edsger", "1930-05-11", "2020-01-02"),
    ]
    return [
        await api.create(name=f"{first} {word.upper() if i % 2 else word}", dateOfBirth=born, registeredDate=registered)
        for i, (first, born, registered) in enumerate(rows)
    ]


async def search(api: Service, **params: Any) -> Any:
    response = await api.http.get("/patients", params=params)
    assert response.status_code == 200, response.text
    return response


def names(response: Any) -> list[str]:
    return [p["name"].split()[0] for p in response.json()]


# -- search ----------------------------------------------------------------------------------------
async def test_without_parameters_the_list_is_unchanged(api: Service) -> None:
    await people(api, tag())
    response = await api.http.get("/patients")
    listed = response.json()
    assert isinstance(listed, list)
    assert [(p["registeredDate"], p["id"]) for p in listed] == sorted((p["registeredDate"], p["id"]) for p in listed)
    assert "link" not in response.headers
    assert response.headers["x-total-count"] == str(len(listed))
    assert set(listed[0]) == {"id", "name", "email", "address", "dateOfBirth", "registeredDate"}


async def test_name_is_a_case_insensitive_substring(api: Service) -> None:
    word = tag()
    created = await people(api, word)
    response = await search(api, name=word.upper()[2:8])
    assert sorted(names(response)) == sorted(p["name"].split()[0] for p in created)
    assert response.headers["x-total-count"] == "5"
    assert names(await search(api, name=f"ada {word}")) == ["Ada"]
    # LIKE's wildcards are plain characters here.
    assert (await search(api, name=f"{word}%")).json() == []
    assert (await search(api, name="_" * 12 + word)).json() == []


async def test_email_is_exact_without_regard_to_case(api: Service) -> None:
    email = f"Exact.{uuid.uuid4().hex[:8]}@Example.com"
    patient = await api.create(email=email)
    assert (await search(api, email=email.lower())).json() == [patient]
    assert (await search(api, email=email.upper())).json() == [patient]
    assert (await search(api, email=email[1:])).json() == []


async def test_date_bounds_are_inclusive(api: Service) -> None:
    word = tag()
    await people(api, word)
    born = await search(api, name=word, bornAfter="1906-12-09", bornBefore="1930-05-11")
    assert sorted(names(born)) == ["Alan", "Edsger", "grace"]
    registered = await search(api, name=word, registeredAfter="2020-01-02", registeredBefore="2020-01-03")
    assert sorted(names(registered)) == ["Edsger", "grace"]
    assert (await search(api, name=word, bornAfter="2000-01-01")).json() == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (None, ["barbara", "Edsger", "grace", "Alan", "Ada"]),
        ("registeredDate", ["barbara", "Edsger", "grace", "Alan", "Ada"]),
        ("-registeredDate", ["Ada", "Alan", "grace", "Edsger", "barbara"]),
        ("name", ["Ada", "Alan", "barbara", "Edsger", "grace"]),
        ("-name", ["grace", "Edsger", "barbara", "Alan", "Ada"]),
        ("dateOfBirth", ["Ada", "grace", "Alan", "Edsger", "barbara"]),
        ("-dateOfBirth", ["barbara", "Edsger", "Alan", "grace", "Ada"]),
    ],
)
async def test_sort(api: Service, sort: str | None, expected: list[str]) -> None:
    word = tag()
    await people(api, word)
    params = {"name": word} | ({"sort": sort} if sort else {})
    assert names(await search(api, **params)) == expected


def links(response: Any) -> dict[str, str]:
    """rel -> target of the Link header, resolved against the request's URL."""
    found = {}
    for part in response.headers["link"].split(","):
        target, _, rel = part.partition(";")
        found[rel.strip().removeprefix('rel="').removesuffix('"')] = urljoin(
            str(response.request.url), target.strip()[1:-1]
        )
    return found


async def test_paging_with_filters_has_total_and_links_with_the_same_query(api: Service) -> None:
    word = tag()
    await people(api, word)
    first = await search(api, name=word, sort="name", size=2)
    assert names(first) == ["Ada", "Alan"]
    assert first.headers["x-total-count"] == "5"
    first_links = links(first)
    assert "prev" not in first_links
    assert set(first_links) == {"self", "first", "next", "last"}
    next_url = urlsplit(first_links["next"])
    assert next_url.path == "/patients"
    assert dict(parse_qsl(next_url.query)) == {"name": word, "sort": "name", "page": "1", "size": "2"}

    second = await api.http.get(first_links["next"])
    assert names(second) == ["barbara", "Edsger"]
    assert set(links(second)) == {"self", "first", "prev", "next", "last"}
    third = await api.http.get(links(second)["next"])
    assert names(third) == ["grace"]
    assert "next" not in links(third)
    assert links(third)["prev"] == links(first)["next"]
    assert dict(parse_qsl(urlsplit(links(first)["last"]).query))["page"] == "2"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"bornAfter": "1990-13-01"}, "bornAfter"),
        ({"bornBefore": "yesterday"}, "bornBefore"),
        ({"registeredAfter": "2020-02-30"}, "registeredAfter"),
        ({"registeredBefore": "20200101"}, "registeredBefore"),
        ({"sort": "email"}, "sort"),
        ({"sort": "+name"}, "sort"),
        ({"name": ""}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"email": " "}, "email"),
        ({"size": 0, "name": "x"}, "size"),
    ],
)
async def test_invalid_search_values_are_400(api: Service, params: dict[str, Any], name: str) -> None:
    response = await api.http.get("/patients", params=params)
    assert response.status_code == 400
    assert response.json() == {"message": f"Invalid query parameter '{name}'"}


# -- ETag and If-Match -----------------------------------------------------------------------------
async def test_etag_changes_with_every_update(api: Service, db: AsyncEngine) -> None:
    patient = await api.create()
    url = f"/patients/{patient['id']}"
    first = await api.http.get(url)
    assert first.headers["etag"] == 'W/"1"'
    body = {k: patient[k] for k in ("name", "email", "address", "dateOfBirth")}
    updated = await api.http.put(url, json={**body, "name": "Renamed"}, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.headers["etag"] == 'W/"2"'
    assert (await api.http.get(url)).headers["etag"] == 'W/"2"'
    async with db.connect() as connection:
        version = await connection.execute(text("SELECT version FROM patients WHERE id = :id"), {"id": patient["id"]})
        assert version.scalar_one() == 2


async def test_stale_if_match_is_412_and_changes_nothing(api: Service, db: AsyncEngine) -> None:
    patient = await api.create()
    url = f"/patients/{patient['id']}"
    body = {k: patient[k] for k in ("name", "email", "address", "dateOfBirth")}
    assert (await api.http.put(url, json={**body, "name": "Second"})).status_code == 200  # no If-Match: as before
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("PUT", {"json": {**body, "name": "Lost update"}}),
        ("PATCH", {"content": b'{"name": "Lost update"}', "headers": MERGE}),
        ("DELETE", {}),
    ]
    for method, kwargs in attempts:
        for stale in ('W/"1"', '"1"', 'W/"1", W/"3"', "garbage"):
            headers = {**kwargs.get("headers", {}), "If-Match": stale}
            response = await api.http.request(method, url, **{**kwargs, "headers": headers})
            assert response.status_code == 412, (method, stale, response.text)
            assert set(response.json()) == {"message"}
    assert (await api.http.get(url)).json()["name"] == "Second"
    async with db.connect() as connection:
        events = await connection.execute(
            text("SELECT event_type FROM outbox WHERE aggregate_id = :id ORDER BY id"), {"id": uuid.UUID(patient["id"])}
        )
        assert [e.event_type for e in events] == ["PATIENT_CREATED", "BILLING_ACCOUNT_REQUESTED", "PATIENT_UPDATED"]
    # The current version (or *) is accepted, also in a list.
    patched = await api.http.patch(
        url, content=b'{"address": "Elsewhere"}', headers={**MERGE, "If-Match": 'W/"1", W/"2"'}
    )
    assert patched.status_code == 200
    assert (await api.http.delete(url, headers={"If-Match": "*"})).status_code == 204


async def test_if_match_on_an_unknown_patient_is_404(api: Service) -> None:
    response = await api.http.delete(f"/patients/{uuid.uuid4()}", headers={"If-Match": 'W/"1"'})
    assert response.status_code == 404


# -- PATCH -----------------------------------------------------------------------------------------
async def test_patch_merges_validates_and_emits_patient_updated(api: Service, db: AsyncEngine) -> None:
    patient = await api.create(registeredDate="2021-01-01")
    url = f"/patients/{patient['id']}"
    response = await api.http.patch(
        url, content=b'{"name": "Patched Name", "registeredDate": "2000-01-01", "id": "x"}', headers=MERGE
    )
    assert response.status_code == 200, response.text
    assert response.json() == {**patient, "name": "Patched Name"}  # registeredDate and id are not patchable
    assert response.headers["etag"] == 'W/"2"'
    async with db.connect() as connection:
        rows = await connection.execute(
            text("SELECT event_type FROM outbox WHERE aggregate_id = :id ORDER BY id"), {"id": uuid.UUID(patient["id"])}
        )
        assert [r.event_type for r in rows][-1] == "PATIENT_UPDATED"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (b'{"name": null}', {"name": "Name is required"}),
        (b'{"email": "nope", "dateOfBirth": "2999-01-01"}', {"email": "Email should be valid", "dateOfBirth": FUTURE}),
        (b'{"address": {"street": "x"}}', {"address": "Address must be a string"}),
        (b'{"name": "x", "address": ""}', {"address": "Address is required"}),
    ],
)  # fmt: skip
async def test_patch_result_gets_the_validation_of_put(api: Service, patch: bytes, expected: dict[str, str]) -> None:
    patient = await api.create()
    response = await api.http.patch(f"/patients/{patient['id']}", content=patch, headers=MERGE)
    assert response.status_code == 400
    assert response.json() == expected
    assert (await api.http.get(f"/patients/{patient['id']}")).json() == patient


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b'{"name": "A"}', "application/json", 415, NOT_MERGE_PATCH),
        (b'{"name": "A"}', "text/plain", 415, NOT_MERGE_PATCH),
        (b'[{"op": "replace"}]', "application/json-patch+json", 415, NOT_MERGE_PATCH),
        (b'{"name": ', "application/merge-patch+json", 400, "Malformed JSON request"),
        (b"", "application/merge-patch+json", 400, "Malformed JSON request"),
        (b"[1]", "application/merge-patch+json", 400, "Request body must be a JSON object"),
        (b'"x"', "application/merge-patch+json; charset=utf-8", 400, "Request body must be a JSON object"),
    ],
)  # fmt: skip
async def test_patch_bodies_that_are_refused(
    api: Service, content: bytes, content_type: str, status: int, message: str
) -> None:
    patient = await api.create()
    response = await api.http.patch(
        f"/patients/{patient['id']}", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert response.json() == {"message": message}


async def test_patch_email_conflict_and_unknown_id(api: Service) -> None:
    other = await api.create()
    patient = await api.create()
    taken = await api.http.patch(
        f"/patients/{patient['id']}", content=f'{{"email": "{other["email"].upper()}"}}'.encode(), headers=MERGE
    )
    assert (taken.status_code, taken.json()) == (400, {"message": "Email address already exists"})
    missing = await api.http.patch(f"/patients/{uuid.uuid4()}", content=b"{}", headers=MERGE)
    assert (missing.status_code, missing.json()) == (404, {"message": "Patient not found"})


async def test_patch_on_the_collection_is_405(api: Service) -> None:
    # (pm_common.http.allowed_methods finds no route under FastAPI 0.165's included routers, so `Allow` is
    # empty for every path today; the route table itself serves PATCH on /patients/{id} only.)
    response = await api.http.patch("/patients", content=b"{}", headers=MERGE)
    assert response.status_code == 405


# -- pure functions --------------------------------------------------------------------------------
@pytest.mark.unit
def test_merge_patch_follows_rfc_7396_examples() -> None:
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["a", "b"]}
    patch = {"title": "Hello!", "phoneNumber": "+01-123", "author": {"familyName": None}, "tags": ["c"]}
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["c"],
        "phoneNumber": "+01-123",
    }
    assert merge_patch({"a": "b"}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert merge_patch({"a": "foo"}, "bar") == "bar"


@pytest.mark.unit
def test_if_match_parsing() -> None:
    assert parse_if_match(None) is None
    assert parse_if_match("*").any  # type: ignore[union-attr]
    assert parse_if_match('W/"3", "4" , junk').versions == {3, 4}  # type: ignore[union-attr]
    assert parse_if_match('W/"x"').versions == frozenset()  # type: ignore[union-attr]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/fhir/Patient", (Action.LIST, None)),
        ("POST", "/fhir/Patient", (Action.CREATE, None)),
        ("GET", f"/fhir/Patient/{ID}", (Action.READ, uuid.UUID(ID))),
        ("PUT", "/fhir/Patient/not-a-uuid", (Action.UPDATE, None)),
        ("DELETE", f"/fhir/Patient/{ID}", (Action.DELETE, uuid.UUID(ID))),
        ("PATCH", f"/patients/{ID}", (Action.UPDATE, uuid.UUID(ID))),
        ("GET", "/fhir/metadata", None),
        ("GET", "/fhir/Patient/", None),
        ("GET", "/fhir/Patient/x/_history/1", None),
        ("GET", "/fhir/Observation", None),
        ("GET", "/patientsX", None),
    ],
)  # fmt: skip
def test_audit_classifies_fhir_routes_like_patients(
    method: str, path: str, expected: tuple[Action, uuid.UUID | None] | None
) -> None:
    assert patient_routes(method, path) == expected
