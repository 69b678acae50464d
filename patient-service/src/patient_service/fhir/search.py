"""FHIR search parameters of Patient as the REST search's query (patients.search.PatientQuery)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from patient_service.fhir.outcome import FhirError
from patient_service.patients.models import EMAIL_MAX, NAME_MAX
from patient_service.patients.schemas import storable
from patient_service.patients.search import PatientQuery, Sort

DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_PAGE = 10_000_000
PAGE_PARAM = "_page"  # ours (0-based): the next/previous links carry it
COUNT_PARAM = "_count"
_NAME_PARAMS = ("name", "family", "given")
_SORTS = {
    "name": Sort.NAME,
    "-name": Sort.NAME_DESC,
    "birthdate": Sort.DATE_OF_BIRTH,
    "-birthdate": Sort.DATE_OF_BIRTH_DESC,
}
_BIRTHDATE = re.compile(r"(eq|ge|le|gt|lt)?([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?", re.ASCII)
SEARCH_PARAMS = {
    "name": ("string", "http://hl7.org/fhir/SearchParameter/individual-name", "Part of the name, any case"),
    "family": ("string", "http://hl7.org/fhir/SearchParameter/individual-family", "Part of the name, any case"),
    "given": ("string", "http://hl7.org/fhir/SearchParameter/individual-given", "Part of the name, any case"),
    "email": ("token", "http://hl7.org/fhir/SearchParameter/individual-email", "The email, any case"),
    "birthdate": (
        "date",
        "http://hl7.org/fhir/SearchParameter/individual-birthdate",
        "YYYY, YYYY-MM or YYYY-MM-DD with the prefix eq (default), ge, le, gt or lt; repeat for a range",
    ),
}


@dataclass(frozen=True)
class FhirSearch:
    """The query, and the parameters it used (in the order sent) for the Bundle's links."""

    query: PatientQuery
    used: list[tuple[str, str]]


def _invalid(name: str, why: str) -> FhirError:
    return FhirError(400, f"Invalid search parameter '{name}': {why}", code="invalid")


def _date_range(value: str) -> tuple[str, date, date]:
    """(prefix, first day, last day) of `[prefix]YYYY[-MM[-DD]]`."""
    match = _BIRTHDATE.fullmatch(value)
    if not match:
        raise _invalid("birthdate", "expected [eq|ge|le|gt|lt]YYYY[-MM[-DD]]")
    prefix, year, month, day = match[1] or "eq", int(match[2]), match[3], match[4]
    try:
        if day is not None:
            first = last = date(year, int(month), int(day))
        elif month is not None:
            first = date(year, int(month), 1)
            last = first.replace(day=calendar.monthrange(year, first.month)[1])
        else:
            first, last = date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        raise _invalid("birthdate", "not a date") from None
    return prefix, first, last


def _int(name: str, value: str, *, low: int, high: int) -> int:
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise _invalid(name, f"expected a whole number from {low} to {high}")
    return int(value)


def _text(name: str, value: str, max_length: int) -> str:
    if not value.strip() or len(value) > max_length or not storable(value):
        raise _invalid(name, "expected a non-blank value")
    return value


def fhir_query(params: Iterable[tuple[str, str]]) -> FhirSearch:
    """The query of a Patient search; unknown parameters are ignored (FHIR's lenient handling), a bad value
    of a known one is 400. Repeated parameters must all hold (AND)."""
    names: list[str] = []
    email: str | None = None
    born_from: date | None = None
    born_to: date | None = None
    sort = Sort.REGISTERED_DATE
    count = DEFAULT_COUNT
    page = 0
    used: list[tuple[str, str]] = []
    for name, value in params:
        if name in _NAME_PARAMS:
            names.append(_text(name, value, NAME_MAX))
        elif name == "email":
            email = _text(name, value, EMAIL_MAX).strip()
        elif name == "birthdate":
            prefix, first, last = _date_range(value)
            try:
                low = {"eq": first, "ge": first, "gt": last + timedelta(days=1)}.get(prefix)
                high = {"eq": last, "le": last, "lt": first - timedelta(days=1)}.get(prefix)
            except OverflowError:  # gt9999-12-31, lt0001-01-01
                raise _invalid(name, "outside the calendar") from None
            born_from = max(born_from, low) if born_from and low else (low or born_from)
            born_to = min(born_to, high) if born_to and high else (high or born_to)
        elif name == "_sort":
            if value not in _SORTS:
                raise _invalid(name, "expected name, -name, birthdate or -birthdate")
            sort = _SORTS[value]
        elif name == COUNT_PARAM:
            count = _int(name, value, low=0, high=MAX_COUNT)
        elif name == PAGE_PARAM:
            page = _int(name, value, low=0, high=MAX_PAGE)
        else:
            continue
        used.append((name, value))
    query = PatientQuery(
        name_contains=names, email=email, born_from=born_from, born_to=born_to, sort=sort, page=page, size=count
    )
    return FhirSearch(query=query, used=used)
