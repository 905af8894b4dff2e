"""Staff pages for tracks: the list, one track, and the storage overview."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from tracks import selectors
from tracks.models import Track


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin[Track]):
    list_display = [
        "title",
        "owner",
        "visibility",
        "storage_backend",
        "size",
        "duration",
        "created_at",
    ]
    list_filter = [
        "storage_backend",
        "visibility",
        ("owner", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["title", "original_filename", "sha256", "owner__username", "=id"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "owner",
        "original_filename",
        "mime_type",
        "size_bytes",
        "sha256",
        "duration_seconds",
        "storage_backend",
        "storage_key",
        "created_at",
        "updated_at",
    ]
    fields = ["title", "visibility", *readonly_fields]
    change_list_template = "admin/tracks/track/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tracks come from uploads, which probe and store the bytes.
        return False

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Track) -> str:
        return f"{obj.size_bytes / 1_000_000:.1f} MB"

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, obj: Track) -> str:
        minutes, seconds = divmod(round(obj.duration_seconds), 60)
        return f"{minutes}:{seconds:02d}"

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "storage/",
                self.admin_site.admin_view(self.storage_view),
                name="tracks_track_storage",
            )
        ]
        return own + super().get_urls()

    def storage_view(self, request: HttpRequest) -> TemplateResponse:
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Track storage",
            "opts": self.model._meta,
            "overview": selectors.track_storage_overview(),
        }
        return TemplateResponse(request, "admin/tracks/storage.html", context)

    def delete_model(self, request: HttpRequest, obj: Track) -> None:
        from tracks.services import track_delete

        track_delete(track=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        from tracks.services import track_delete

        for track in queryset:
            track_delete(track=track)
