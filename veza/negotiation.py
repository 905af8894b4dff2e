"""DRF content negotiation that skips Accept parsing when only JSON is offered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JsonFirstNegotiation(DefaultContentNegotiation):
    """With one renderer (JSON, outside debug) it is the answer, whatever the
    Accept header says: parsing Accept cost every API request a noticeable
    share of its time, and a client that accepts no JSON gets JSON rather
    than a 406."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> Any:
        offered = list(renderers)
        if len(offered) == 1 and not format_suffix:
            return offered[0], offered[0].media_type
        return super().select_renderer(request, offered, format_suffix)
