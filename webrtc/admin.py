"""Call history for staff, read-only: calls are written by signaling only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webrtc.models import Call


@admin.register(Call)
class CallAdmin(admin.ModelAdmin[Call]):
    list_display = [
        "created_at",
        "caller",
        "callee",
        "media",
        "state",
        "end_reason",
        "duration_seconds",
    ]
    list_filter = ["state", "end_reason", "media"]
    search_fields = ["caller__username", "callee__username", "id"]
    date_hierarchy = "created_at"
    list_select_related = ["caller", "callee"]
    readonly_fields = [f.name for f in Call._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
