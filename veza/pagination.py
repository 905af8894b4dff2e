"""The API lists' cursor pagination: newest first, no COUNT(*), any depth alike."""

from __future__ import annotations

from base64 import b64decode
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from veza.errors import InvalidParameter


class NewestFirstPagination(CursorPagination):
    """DRF's cursor pagination on `-created_at, -id`, which an index serves.

    A page is `{"next", "previous", "results"}`: no total (a COUNT(*) of a
    million rows per call) and no page numbers (an OFFSET walks every row
    before the page). A cursor that does not decode is the client's
    mistake, a 400 `invalid_cursor`; `?page=` (the old page numbers) is
    refused rather than silently answered with the first page."""

    # The id breaks ties: DRF steps through rows of one created_at by an
    # offset, which needs their order to be the same on every request.
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

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
