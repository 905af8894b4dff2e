"""The API lists' cursor pagination: newest first, no COUNT(*), any depth alike."""

from __future__ import annotations

import re
from base64 import b64decode
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from veza.errors import InvalidParameter


class NewestFirstPagination(CursorPagination):
    """DRF's cursor pagination on `-created_at, -id`, which an index serves.

    A page is `{"next", "previous", "results"}`: no total (a COUNT(*) of a
    million rows per call) and no page numbers (an OFFSET walks every row
    before the page). A cursor that does not decode is the client's
    mistake, a 400 `invalid_cursor`; `?page=` (the old page numbers) and a
    page_size out of range are refused rather than silently answered."""

    # The id breaks ties: DRF steps through rows of one created_at by an
    # offset, which needs their order to be the same on every request.
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        # DRF falls back to the default on a page_size it cannot read; a
        # client asking for "abc" or 1000 rows gets told instead.
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,9}", value) or not (
            1 <= int(value) <= self.max_page_size
        ):
            raise InvalidParameter(
                f"page_size is a whole number from 1 to {self.max_page_size}.",
                details={"parameter": self.page_size_query_param},
            )
        return int(value)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position in the list: take it from a "
                "page's `next` or `previous` link, never build one.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "Items per page.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                },
            },
        ]

    def paginate_queryset(
        self, queryset: Any, request: Request, view: Any = None
    ) -> list[Any] | None:
        if "page" in request.query_params:
            raise InvalidParameter(
                "Lists are paginated by cursor: follow the `next` link.",
                code="invalid_parameter",
                details={"parameter": "page"},
            )
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            if encoded is not None:
                # DRF's decoding skips characters outside base64's alphabet,
                # so "!!!" would read as the first page.
                b64decode(encoded.encode("ascii"), validate=True)
            cursor = super().decode_cursor(request)
            # The position is a created_at this list wrote; anything else
            # would reach the query and fail there.
            position = None if cursor is None else cursor.position
            if position is not None and parse_datetime(str(position)) is None:
                raise ValueError(position)
        except (NotFound, ValueError):
            raise InvalidParameter(
                "The cursor is not one this list gave out.",
                code="invalid_cursor",
                details={"parameter": self.cursor_query_param},
            ) from None
        return cursor


def newest_first_page(
    *, request: Request, view: Any, queryset: Any, serializer: type[Any]
) -> Response:
    """One page of `queryset`, serialized, as every API list answers it."""
    paginator = NewestFirstPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)
