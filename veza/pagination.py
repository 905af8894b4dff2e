"""Page-number pagination that answers a malformed page number with a 400."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from veza.errors import InvalidParameter


class PagePagination(PageNumberPagination):
    """DRF's, except `?page=abc` (or 0, -1, 1.5, empty) is the client's
    mistake, a 400 `invalid_page`, not DRF's 404. A page past the end
    stays a 404: that page does not exist."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> Any:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise InvalidParameter(
                "The page must be a whole number from 1.",
                code="invalid_page",
                details={"parameter": self.page_query_param},
            )
        return raw
