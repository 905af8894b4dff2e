"""HTTP conditional and range requests (RFC 9110 §13-14) against a known size."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    """The range lies outside the representation: answer 416."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive, or None to serve the whole representation.

    Several ranges, or a header we do not understand, are ignored (the RFC
    allows serving 200 with the whole body instead).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:
        # Suffix range: the last N bytes.
        length = int(last_s)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - length), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid syntax: ignore the header
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


def conditional_range(
    range_header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """`parse_range`, honouring If-Range: a stale validator gets the whole body."""
    if if_range is not None and if_range.strip() != etag:
        return None  # the client's copy is stale: send it all
    return parse_range(range_header, size)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison, RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags or tags == ["*"]
