"""Every row of the contract's patient table over HTTP, against a real PostgreSQL (relays off)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pm_proto import billing_service_pb2, patient_event_pb2

from .conftest import Service

TODAY = datetime.now(UTC).date()
TOMORROW = (TODAY + timedelta(days=1)).isoformat()


def valid_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Ada Lovelace",
        "email": f"ada-{uuid.uuid4().hex[:10]}@example.com",
        "address": "12 St James's Square, London",
        "dateOfBirth": "1985-12-10",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def post_raw(api: Service, body: Any) -> Any:
    # ensure_ascii keeps lone surrogates as \ud800 escapes: what a JSON client may really send.
    return await api.http.post(
        "/patients", content=json.dumps(body, ensure_ascii=True), headers={"content-type": "application/json"}
    )


@pytest.fixture(scope="module")
async def db(module_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(module_database_url)
    yield engine
    await engine.dispose()


async def rows_for(db: AsyncEngine, patient_id: str) -> list[Any]:
    async with db.connect() as connection:
        result = await connection.execute(
            text("SELECT * FROM outbox WHERE aggregate_id = :id ORDER BY id"), {"id": uuid.UUID(patient_id)}
        )
        return list(result.all())


# -- the validation matrix: one table, every failing field reported at once ------------------------
REQUIRED = {
    "name": "Name is required",
    "email": "Email is required",
    "address": "Address is required",
    "dateOfBirth": "Date of birth is required",
}
INVALID_DATE = "Date of birth must be a valid date (YYYY-MM-DD)"
INVALID_EMAIL = {"email": "Email should be valid"}

VALIDATION_CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("every field missing", {"name": ..., "email": ..., "address": ..., "dateOfBirth": ...}, REQUIRED),
    ("every field null", {"name": None, "email": None, "address": None, "dateOfBirth": None}, REQUIRED),
    ("every field empty", {"name": "", "email": "", "address": "", "dateOfBirth": ""}, REQUIRED),
    ("every field blank", {"name": "  ", "email": "\t", "address": "\n ", "dateOfBirth": " "}, REQUIRED),
    ("name 101 characters", {"name": "x" * 101}, {"name": "Name cannot exceed 100 characters"}),
    ("name 101 emoji", {"name": "🩺" * 101}, {"name": "Name cannot exceed 100 characters"}),
    ("address 256 characters", {"address": "a" * 256}, {"address": "Address cannot exceed 255 characters"}),
    ("email without @", {"email": "not-an-email"}, INVALID_EMAIL),
    ("email without domain dot", {"email": "a@b"}, INVALID_EMAIL),
    ("email with display name", {"email": "Ada <ada@example.com>"}, INVALID_EMAIL),
    ("email with two @", {"email": "a@b@example.com"}, INVALID_EMAIL),
    ("email over 255 characters", {"email": "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "c" * 10 + ".com"}, INVALID_EMAIL),
    ("email with NUL", {"email": "a\u0000b@example.com"}, INVALID_EMAIL),
    ("email with lone surrogate", {"email": "a\ud800@example.com"}, INVALID_EMAIL),
    ("date 30 February", {"dateOfBirth": "2023-02-30"}, {"dateOfBirth": INVALID_DATE}),
    ("date month 13", {"dateOfBirth": "1990-13-01"}, {"dateOfBirth": INVALID_DATE}),
    ("date year 0", {"dateOfBirth": "0000-01-01"}, {"dateOfBirth": INVALID_DATE}),
    ("date without zero padding", {"dateOfBirth": "1990-5-15"}, {"dateOfBirth": INVALID_DATE}),
    ("date as DD/MM/YYYY", {"dateOfBirth": "15/05/1990"}, {"dateOfBirth": INVALID_DATE}),
    ("date in basic format", {"dateOfBirth": "19900515"}, {"dateOfBirth": INVALID_DATE}),
    ("date with time", {"dateOfBirth": "1990-05-15T00:00:00"}, {"dateOfBirth": INVALID_DATE}),
    ("date in other digits", {"dateOfBirth": "\u0661\u0669\u0669\u0660-05-15"}, {"dateOfBirth": INVALID_DATE}),
    ("date as number", {"dateOfBirth": 19900515}, {"dateOfBirth": INVALID_DATE}),
    ("date tomorrow", {"dateOfBirth": TOMORROW}, {"dateOfBirth": "Date of birth cannot be in the future"}),
    ("date 9999-12-31", {"dateOfBirth": "9999-12-31"}, {"dateOfBirth": "Date of birth cannot be in the future"}),
    (
        "registeredDate invalid",
        {"registeredDate": "2024-02-30"},
        {"registeredDate": "Registered date must be a valid date (YYYY-MM-DD)"},
    ),
    (
        "registeredDate future",
        {"registeredDate": TOMORROW},
        {"registeredDate": "Registered date cannot be in the future"},
    ),
    ("name number", {"name": 123}, {"name": "Name must be a string"}),
    ("name boolean", {"name": True}, {"name": "Name must be a string"}),
    ("name array", {"name": ["Ada"]}, {"name": "Name must be a string"}),
    ("name object", {"name": {"first": "Ada"}}, {"name": "Name must be a string"}),
    ("email number", {"email": 42}, {"email": "Email must be a string"}),
    ("address object", {"address": {}}, {"address": "Address must be a string"}),
    ("name with NUL", {"name": "Ada\u0000Lovelace"}, {"name": "Name contains invalid characters"}),
    ("name with lone surrogate", {"name": "Ada \ud800"}, {"name": "Name contains invalid characters"}),
    ("address with NUL", {"address": "\u0000"}, {"address": "Address contains invalid characters"}),
    (
        "several fields at once",
        {"name": "x" * 101, "email": "nope", "address": None, "dateOfBirth": TOMORROW, "registeredDate": "soon"},
        {
            "name": "Name cannot exceed 100 characters",
            "email": "Email should be valid",
            "address": "Address is required",
            "dateOfBirth": "Date of birth cannot be in the future",
            "registeredDate": "Registered date must be a valid date (YYYY-MM-DD)",
        },
    ),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES])
async def test_create_validation(api: Service, case: str, overrides: dict[str, Any], expected: dict[str, str]) -> None:
    response = await post_raw(api, valid_body(**overrides))
    assert response.status_code == 400, response.text
    assert response.json() == expected


@pytest.mark.parametrize(
    ("case", "overrides", "expected"), VALIDATION_CASES[:8], ids=[c[0] for c in VALIDATION_CASES[:8]]
)
async def test_update_validation(api: Service, case: str, overrides: dict[str, Any], expected: dict[str, str]) -> None:
    patient = await api.create()
    body = valid_body(**overrides)
    response = await api.http.put(
        f"/patients/{patient['id']}", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json() == expected


ACCEPTED_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("name of 100 characters", {"name": "n" * 100}, {"name": "n" * 100}),
    ("name of 100 emoji", {"name": "🩺" * 100}, {"name": "🩺" * 100}),
    ("address of 255 characters", {"address": "a" * 255}, {"address": "a" * 255}),
    ("born today", {"dateOfBirth": TODAY.isoformat()}, {"dateOfBirth": TODAY.isoformat()}),
    ("born 1900", {"dateOfBirth": "1900-01-01"}, {"dateOfBirth": "1900-01-01"}),
    ("leap day", {"dateOfBirth": "2000-02-29"}, {"dateOfBirth": "2000-02-29"}),
    ("surrounding whitespace is kept", {"name": "  Ada Lovelace \t"}, {"name": "  Ada Lovelace \t"}),
    (
        "odd text is kept as sent",
        {"name": 'Zoë O\'Brien-Łukasz "Doc" 🩺', "address": "1 Rue de l'Église; DROP TABLE patients;--\n2nd line"},
        {"name": 'Zoë O\'Brien-Łukasz "Doc" 🩺', "address": "1 Rue de l'Église; DROP TABLE patients;--\n2nd line"},
    ),
    ("right-to-left and zero-width", {"name": "\u202eabc\u200d"}, {"name": "\u202eabc\u200d"}),
    ("registeredDate given", {"registeredDate": "2020-01-31"}, {"registeredDate": "2020-01-31"}),
    ("registeredDate null", {"registeredDate": None}, {"registeredDate": TODAY.isoformat()}),
    ("unknown fields ignored", {"id": str(uuid.uuid4()), "role": "ADMIN"}, {}),
]


@pytest.mark.parametrize(("case", "overrides", "expected"), ACCEPTED_CASES, ids=[c[0] for c in ACCEPTED_CASES])
async def test_create_accepts_odd_but_valid_input(
    api: Service, case: str, overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = valid_body(**overrides)
    response = await post_raw(api, body)
    assert response.status_code == 201, response.text
    created = response.json()
    for key, value in expected.items():
        assert created[key] == value
    fetched = (await api.http.get(f"/patients/{created['id']}")).json()
    assert fetched == created


INTERNATIONAL_EMAILS = ["用户@例子.广告", "josé.garcía@correo.es", "o'brien+tag@example.co.uk"]


@pytest.mark.parametrize("email", INTERNATIONAL_EMAILS)
async def test_valid_unusual_emails_are_accepted_as_sent(api: Service, email: str) -> None:
    unique = email.replace("@", f"{uuid.uuid4().hex[:6]}@", 1)
    created = await api.create(email=unique)
    assert created["email"] == unique


# -- bodies that are not a patient object ----------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b'{"name": "Ada",', "application/json", "Malformed JSON request"),
        (b"{'name': 'Ada'}", "application/json", "Malformed JSON request"),
        (b'{"name": "Ada"} trailing', "application/json", "Malformed JSON request"),
        (b'{"name": "\xc3\x28"}', "application/json", "Malformed JSON request"),
        (b"\xff\xfe\x00", "application/json", "Malformed JSON request"),
        (b"[" * 100_000, "application/json", "Malformed JSON request"),
        (b"[1, 2]", "application/json", "Request body must be a JSON object"),
        (b'"Ada"', "application/json", "Request body must be a JSON object"),
        (b"null", "application/json", "Request body must be a JSON object"),
        (b"", "application/json", "Request body must be a JSON object"),
        (b'{"name": "Ada"}', "text/plain", "Request body must be a JSON object"),
    ],
    ids=[
        "truncated",
        "single quotes",
        "trailing garbage",
        "invalid utf-8 in string",
        "binary",
        "deep nesting",
        "array",
        "string",
        "null",
        "empty",
        "text/plain",
    ],
)
async def test_body_that_is_not_a_json_object(api: Service, content: bytes, content_type: str, message: str) -> None:
    for method in ("POST", "PUT"):
        path = "/patients" if method == "POST" else f"/patients/{uuid.uuid4()}"
        response = await api.http.request(method, path, content=content, headers={"content-type": content_type})
        assert response.status_code == 400, (method, response.text)
        assert response.json() == {"message": message}


async def test_body_over_one_mebibyte_is_413(api: Service) -> None:
    body = json.dumps(valid_body(address="a" * (1024 * 1024)))
    response = await api.http.post("/patients", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"message": "Request body too large"}


# -- the contract's rows -------------------------------------------------------------------------------
async def test_create_returns_201_and_the_patient(api: Service, db: AsyncEngine) -> None:
    body = valid_body()
    response = await api.http.post("/patients", json=body)
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "name", "email", "address", "dateOfBirth", "registeredDate"}
    assert uuid.UUID(created["id"])
    assert {k: created[k] for k in ("name", "email", "address", "dateOfBirth")} == body
    assert created["registeredDate"] == datetime.now(UTC).date().isoformat()

    # The same transaction wrote the Kafka event and the billing request.
    rows = await rows_for(db, created["id"])
    assert [(r.destination, r.event_type, r.state) for r in rows] == [
        ("patient-event", "PATIENT_CREATED", "PENDING"),
        ("billing-account", "BILLING_ACCOUNT_REQUESTED", "PENDING"),
    ]
    event = patient_event_pb2.PatientEvent.FromString(rows[0].payload)
    assert (event.patientId, event.name, event.email, event.event_type) == (
        created["id"],
        body["name"],
        body["email"],
        "PATIENT_CREATED",
    )
    assert event.event_id == str(rows[0].event_id)
    # occurred_at is the time of the change's transaction (== the outbox row's created_at, now()).
    assert event.occurred_at.ToDatetime(tzinfo=UTC) == rows[0].created_at
    request = billing_service_pb2.BillingRequest.FromString(rows[1].payload)
    assert (request.patientId, request.name, request.email) == (created["id"], body["name"], body["email"])


async def test_get_by_id(api: Service) -> None:
    created = await api.create()
    response = await api.http.get(f"/patients/{created['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == created
    # Any spelling of the same UUID names the same patient.
    assert (await api.http.get(f"/patients/{created['id'].upper()}")).json() == created


async def test_get_unknown_id_is_404(api: Service) -> None:
    response = await api.http.get(f"/patients/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"message": "Patient not found"}


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "123", "123e4567-e89b-12d3-a456-42661417400", "%00", "x" * 5000, "💥"]
)
async def test_non_uuid_id_is_400_on_every_call(api: Service, bad_id: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        kwargs: dict[str, Any] = {"json": valid_body()} if method == "PUT" else {}
        response = await api.http.request(method, f"/patients/{bad_id}", **kwargs)
        assert response.status_code == 400, (method, response.text)
        assert response.json() == {"message": "Invalid patient id"}
    # Also when the body is invalid too: the id is reported.
    response = await api.http.put(f"/patients/{bad_id}", json={})
    assert response.json() == {"message": "Invalid patient id"}


async def test_duplicate_email_any_case_is_400(api: Service, db: AsyncEngine) -> None:
    first = await api.create(email="Grace.Hopper@Example.com")
    before = await rows_for(db, first["id"])
    for variant in (
        "Grace.Hopper@Example.com",
        "grace.hopper@example.com",
        "GRACE.HOPPER@EXAMPLE.COM",
        " grace.hopper@example.com ",
    ):
        response = await api.http.post("/patients", json=valid_body(email=variant))
        assert response.status_code == 400
        assert response.json() == {"message": "Email address already exists"}
    assert await rows_for(db, first["id"]) == before
    async with db.connect() as connection:
        count = (
            await connection.execute(
                text("SELECT count(*) FROM patients WHERE lower(email) = 'grace.hopper@example.com'")
            )
        ).scalar_one()
    assert count == 1


async def test_update_returns_the_updated_patient_and_keeps_registered_date(api: Service, db: AsyncEngine) -> None:
    created = await api.create(registeredDate="2021-03-04")
    body = valid_body(name="Renamed", address="New address", dateOfBirth="1970-01-01", registeredDate="2000-01-01")
    response = await api.http.put(f"/patients/{created['id']}", json=body)
    assert response.status_code == 200
    updated = response.json()
    assert updated == {
        "id": created["id"],
        "name": "Renamed",
        "email": body["email"],
        "address": "New address",
        "dateOfBirth": "1970-01-01",
        "registeredDate": "2021-03-04",
    }
    assert (await api.http.get(f"/patients/{created['id']}")).json() == updated
    rows = await rows_for(db, created["id"])
    assert [r.event_type for r in rows] == ["PATIENT_CREATED", "BILLING_ACCOUNT_REQUESTED", "PATIENT_UPDATED"]
    event = patient_event_pb2.PatientEvent.FromString(rows[-1].payload)
    assert (event.name, event.email, event.event_type) == ("Renamed", body["email"], "PATIENT_UPDATED")


async def test_update_ignores_an_invalid_registered_date(api: Service) -> None:
    created = await api.create()
    response = await api.http.put(f"/patients/{created['id']}", json=valid_body(registeredDate="garbage"))
    assert response.status_code == 200
    assert response.json()["registeredDate"] == created["registeredDate"]


async def test_update_may_keep_its_own_email_in_another_case(api: Service) -> None:
    created = await api.create(email="Own.Email@example.com")
    response = await api.http.put(f"/patients/{created['id']}", json=valid_body(email="own.email@EXAMPLE.com"))
    assert response.status_code == 200
    assert response.json()["email"] == "own.email@EXAMPLE.com"


async def test_update_to_an_email_of_another_patient_is_400(api: Service, db: AsyncEngine) -> None:
    other = await api.create(email="taken@example.com")
    patient = await api.create()
    response = await api.http.put(f"/patients/{patient['id']}", json=valid_body(email="TAKEN@example.com"))
    assert response.status_code == 400
    assert response.json() == {"message": "Email address already exists"}
    assert (await api.http.get(f"/patients/{patient['id']}")).json() == patient
    assert (await api.http.get(f"/patients/{other['id']}")).json() == other
    assert [r.event_type for r in await rows_for(db, patient["id"])] == ["PATIENT_CREATED", "BILLING_ACCOUNT_REQUESTED"]


async def test_update_unknown_id_is_404(api: Service) -> None:
    response = await api.http.put(f"/patients/{uuid.uuid4()}", json=valid_body())
    assert response.status_code == 404
    assert response.json() == {"message": "Patient not found"}


async def test_delete_is_204_then_404(api: Service, db: AsyncEngine) -> None:
    created = await api.create(name="To Be Deleted")
    response = await api.http.delete(f"/patients/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.http.get(f"/patients/{created['id']}")).status_code == 404
    again = await api.http.delete(f"/patients/{created['id']}")
    assert again.status_code == 404
    assert again.json() == {"message": "Patient not found"}
    rows = await rows_for(db, created["id"])
    assert [r.event_type for r in rows][-2:] == ["PATIENT_DELETED", "BILLING_ACCOUNT_CLOSE_REQUESTED"]
    event = patient_event_pb2.PatientEvent.FromString(rows[-2].payload)
    assert (event.patientId, event.name, event.email) == (created["id"], "", "")  # the id only
    close = billing_service_pb2.BillingAccountRequest.FromString(rows[-1].payload)
    assert close.patientId == created["id"]
    # The email is free again.
    await api.create(email=created["email"])


async def test_list_is_a_top_level_array_in_a_stable_order(api: Service) -> None:
    mine = [await api.create(registeredDate=f"1999-01-0{day}") for day in (3, 1, 2)]
    response = await api.http.get("/patients")
    assert response.status_code == 200
    listed = response.json()
    assert isinstance(listed, list)
    assert response.headers["x-total-count"] == str(len(listed))
    for patient in mine:
        assert patient in listed
    keys = [(p["registeredDate"], p["id"]) for p in listed]
    assert keys == sorted(keys)


async def test_list_paging(api: Service) -> None:
    for _ in range(3):
        await api.create()
    everything = (await api.http.get("/patients")).json()
    first = await api.http.get("/patients", params={"page": 0, "size": 2})
    second = await api.http.get("/patients", params={"page": 1, "size": 2})
    assert first.json() == everything[0:2]
    assert second.json() == everything[2:4]
    assert first.headers["x-total-count"] == str(len(everything))
    beyond = await api.http.get("/patients", params={"page": 10_000, "size": 1000})
    assert beyond.status_code == 200
    assert beyond.json() == []
    only_size = await api.http.get("/patients", params={"size": 1})
    assert only_size.json() == everything[:1]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"page": -1}, "page"), ({"page": "abc"}, "page"), ({"size": 0}, "size"), ({"size": 1001}, "size")],
)
async def test_list_with_bad_paging_is_400(api: Service, params: dict[str, Any], name: str) -> None:
    response = await api.http.get("/patients", params=params)
    assert response.status_code == 400
    assert response.json() == {"message": f"Invalid query parameter '{name}'"}


async def test_unknown_routes_and_methods_answer_json(api: Service) -> None:
    missing = await api.http.get("/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Not Found"}
    trailing = await api.http.get("/patients/")
    assert trailing.status_code == 404  # no redirect: behind the gateway its Location would be wrong
    not_allowed = await api.http.patch("/patients")
    assert not_allowed.status_code == 405
    assert not_allowed.json() == {"message": "Method Not Allowed"}


async def test_health_reports_database_and_outbox(api: Service) -> None:
    response = await api.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "UP"
    assert body["checks"]["database"] == "UP"
    assert body["checks"]["kafka"] == "DISABLED"
    assert body["checks"]["outbox"]["pending"] >= 0
    assert body["checks"]["outbox"]["parked"] == 0


async def test_openapi_documents_the_patient_schemas(api: Service) -> None:
    for path in ("/openapi.json", "/v3/api-docs"):
        response = await api.http.get(path)
        assert response.status_code == 200
        schemas = response.json()["components"]["schemas"]
        assert set(schemas["PatientCreate"]["required"]) == {"name", "email", "address", "dateOfBirth"}
        assert set(schemas["PatientResponse"]["properties"]) == {
            "id",
            "name",
            "email",
            "address",
            "dateOfBirth",
            "registeredDate",
        }


async def test_non_ascii_emails_are_unique_without_regard_to_case(api: Service) -> None:
    local = f"émile.zola.{uuid.uuid4().hex[:6]}"
    await api.create(email=f"{local.upper()}@exemple.fr")
    response = await api.http.post("/patients", json=valid_body(email=f"{local}@exemple.fr"))
    assert response.status_code == 400
    assert response.json() == {"message": "Email address already exists"}
