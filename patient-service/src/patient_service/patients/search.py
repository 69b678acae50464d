"""Searching patients: one query shape for GET /patients and the FHIR search, its SQL, and RFC 8288 links."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, bindparam, func, select

from patient_service.patients.models import EMAIL_MAX, NAME_MAX, patients
from patient_service.patients.schemas import storable
from pm_common.database import DriverRead
from pm_common.http import DomainError

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
DEFAULT_PAGE_SIZE = 100


class Sort(StrEnum):
    """The orders a list may have; `-` is descending. Each ends with the id, so pages never overlap."""

    NAME = "name"
    NAME_DESC = "-name"
    DATE_OF_BIRTH = "dateOfBirth"
    DATE_OF_BIRTH_DESC = "-dateOfBirth"
    REGISTERED_DATE = "registeredDate"
    REGISTERED_DATE_DESC = "-registeredDate"


_SORT_KEYS: dict[str, ColumnElement[Any]] = {
    "name": func.lower(patients.c.name),
    "dateOfBirth": patients.c.date_of_birth,
    "registeredDate": patients.c.registered_date,
}


@dataclass(frozen=True)
class PatientQuery:
    """What to find: every condition given must hold. Date bounds are inclusive."""

    name_contains: Sequence[str] = ()  # case-insensitive substrings, all of them
    email: str | None = None  # case-insensitive, exact
    born_from: date | None = None
    born_to: date | None = None
    registered_from: date | None = None
    registered_to: date | None = None
    sort: Sort = Sort.REGISTERED_DATE
    page: int | None = None  # None with size None: everything
    size: int | None = None

    @property
    def paged(self) -> bool:
        """Whether one page was asked for (page or size given)."""
        return self.page is not None or self.size is not None

    @property
    def limit(self) -> int:
        return self.size if self.size is not None else DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page or 0) * self.limit


def invalid(name: str) -> DomainError:
    """The 400 of a query parameter whose value cannot be used."""
    return DomainError(f"Invalid query parameter '{name}'")


def parse_date(name: str, value: str) -> date:
    """A YYYY-MM-DD query value, or 400 naming the parameter."""
    if not _ISO_DATE.fullmatch(value):
        raise invalid(name)
    try:
        return date.fromisoformat(value)
    except ValueError:  # 2023-02-30
        raise invalid(name) from None


def parse_text(name: str, value: str, *, max_length: int) -> str:
    """A non-blank text value PostgreSQL can compare, of at most max_length characters, or 400."""
    if not value.strip() or len(value) > max_length or not storable(value):
        raise invalid(name)
    return value


def rest_query(
    *,
    name: str | None,
    email: str | None,
    born_after: str | None,
    born_before: str | None,
    registered_after: str | None,
    registered_before: str | None,
    sort: str | None,
    page: int | None,
    size: int | None,
) -> PatientQuery:
    """GET /patients' parameters as a query (400 for a value that cannot be used)."""
    if sort is not None and sort not in Sort._value2member_map_:
        raise invalid("sort")
    return PatientQuery(
        name_contains=[parse_text("name", name, max_length=NAME_MAX)] if name is not None else [],
        email=parse_text("email", email, max_length=EMAIL_MAX).strip() if email is not None else None,
        born_from=parse_date("bornAfter", born_after) if born_after is not None else None,
        born_to=parse_date("bornBefore", born_before) if born_before is not None else None,
        registered_from=parse_date("registeredAfter", registered_after) if registered_after is not None else None,
        registered_to=parse_date("registeredBefore", registered_before) if registered_before is not None else None,
        sort=Sort(sort) if sort is not None else Sort.REGISTERED_DATE,
        page=page,
        size=size,
    )


def _like_pattern(text: str) -> str:
    """`%text%` for LIKE, with LIKE's own wildcards and its escape character taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class SearchStatements:
    """The SQL of one query shape, with every value a bound parameter (see `search_statements`)."""

    rows: DriverRead  # the rows of the page, in order
    count: DriverRead  # how many match in all


def search_statements(query: PatientQuery) -> tuple[SearchStatements, dict[str, Any]]:
    """The statements for a query and the values of their parameters.

    The statements depend only on which conditions are present, the sort and paging, so they are built and
    compiled once per shape (bench/README.md, "The second pass").
    """
    shape = _Shape(
        name_terms=len(query.name_contains),
        email=query.email is not None,
        born_from=query.born_from is not None,
        born_to=query.born_to is not None,
        registered_from=query.registered_from is not None,
        registered_to=query.registered_to is not None,
        sort=query.sort,
        paged=query.paged,
    )
    values: dict[str, Any] = {f"name_{i}": _like_pattern(text) for i, text in enumerate(query.name_contains)}
    values.update(
        email=query.email.lower() if query.email is not None else None,
        born_from=query.born_from,
        born_to=query.born_to,
        registered_from=query.registered_from,
        registered_to=query.registered_to,
        limit=query.limit,
        offset=query.offset,
    )
    return _statements(shape), values


@dataclass(frozen=True)
class _Shape:
    name_terms: int
    email: bool
    born_from: bool
    born_to: bool
    registered_from: bool
    registered_to: bool
    sort: Sort
    paged: bool


@functools.lru_cache(maxsize=256)
def _statements(shape: _Shape) -> SearchStatements:
    where = and_(True, *_conditions(shape))
    descending = shape.sort.value.startswith("-")
    key = _SORT_KEYS[shape.sort.value.removeprefix("-")]
    order = (key.desc(), patients.c.id.desc()) if descending else (key, patients.c.id)
    rows = select(patients).where(where).order_by(*order)
    if shape.paged:
        rows = rows.limit(bindparam("limit")).offset(bindparam("offset"))
    count = select(func.count()).select_from(patients).where(where)
    return SearchStatements(rows=DriverRead(rows), count=DriverRead(count))


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a shape (each served by an index of migration 0005 or 0001)."""
    # lower(name) LIKE '%..%': the trigram GIN index on lower(name) serves it.
    found: list[ColumnElement[bool]] = [
        func.lower(patients.c.name).like(bindparam(f"name_{i}"), escape="\\") for i in range(shape.name_terms)
    ]
    if shape.email:
        found.append(func.lower(patients.c.email) == bindparam("email"))
    if shape.born_from:
        found.append(patients.c.date_of_birth >= bindparam("born_from"))
    if shape.born_to:
        found.append(patients.c.date_of_birth <= bindparam("born_to"))
    if shape.registered_from:
        found.append(patients.c.registered_date >= bindparam("registered_from"))
    if shape.registered_to:
        found.append(patients.c.registered_date <= bindparam("registered_to"))
    return found


def page_links(
    path: str, params: Iterable[tuple[str, str]], *, page: int, size: int, total: int, page_param: str, size_param: str
) -> dict[str, str]:
    """relation -> URL (`path?<the same query>&page=..&size=..`) of this, the first, previous, next and last pages."""
    kept = [(k, v) for k, v in params if k not in (page_param, size_param)]

    def url(number: int) -> str:
        return f"{path}?{urlencode([*kept, (page_param, str(number)), (size_param, str(size))])}"

    last = max((total - 1) // size, 0) if size else 0
    links = {"self": url(page), "first": url(0)}
    if page > 0:
        links["prev"] = url(min(page - 1, last))
    if size and (page + 1) * size < total:
        links["next"] = url(page + 1)
    links["last"] = url(last)
    return links


def link_header(links: dict[str, str]) -> str:
    """RFC 8288: `<url>; rel="next", <url>; rel="prev"`."""
    return ", ".join(f'<{url}>; rel="{relation}"' for relation, url in links.items())
