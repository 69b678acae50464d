"""Optimistic concurrency: a patient's version as an ETag (`W/"<version>"`) and the If-Match that checks it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pm_common.http import DomainError

PRECONDITION_FAILED = "The patient has changed since it was read (If-Match does not match its ETag)"
_ENTITY_TAG = re.compile(r'(?:W/)?"([0-9]{1,9})"', re.ASCII)


class PreconditionFailed(DomainError):
    """If-Match names no version the patient has now."""

    status_code = 412


@dataclass(frozen=True, slots=True)
class IfMatch:
    """The versions an If-Match header accepts (`*`: any version of an existing patient)."""

    versions: frozenset[int]
    any: bool = False

    def matches(self, version: int) -> bool:
        return self.any or version in self.versions


def etag(version: int) -> str:
    """The ETag of a version: weak, as a version number says nothing about the bytes of a representation."""
    return f'W/"{version}"'


def parse_if_match(value: str | None) -> IfMatch | None:
    """The header's versions; None without the header. W/"3" and "3" both name version 3 (FHIR sends the
    weak form); a tag that is no version of ours matches nothing, so it ends in 412."""
    if value is None:
        return None
    if value.strip() == "*":
        return IfMatch(frozenset(), any=True)
    versions = set()
    for part in value.split(","):
        match = _ENTITY_TAG.fullmatch(part.strip())
        if match:
            versions.add(int(match[1]))
    return IfMatch(frozenset(versions))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: null removes a member, an object merges, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
