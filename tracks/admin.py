"""Staff pages for tracks: the list, one track, and the storage overview."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from mediastore.backends import s3_require
from mediastore.errors import S3NotConfigured
from tracks import selectors
from tracks.models import (
    StorageBackend,
    StorageMigrationRun,
    Track,
    UploadQuota,
    UploadSession,
)
from veza.admin_pagination import EstimatedCountPaginator


class TakedownFilter(admin.SimpleListFilter):
    title = "takedown"
    parameter_name = "taken_down"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("yes", "Taken down"), ("no", "Available")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Track]
    ) -> QuerySet[Track]:
        if self.value() == "yes":
            return queryset.filter(taken_down_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(taken_down_at__isnull=True)
        return queryset


class TakedownForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Kept with the track, e.g. the notice's sender, date and reference.",
    )


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
    # At a million rows every part of this page must be served by an index:
    # no owner filter (it lists the distinct owners of every row), no date
    # hierarchy (the distinct dates of every row), sorting by the indexed
    # creation time only, no full-table count, and a search whose arms are
    # each indexed (selectors.track_search).
    list_filter = ["storage_backend", "visibility", TakedownFilter]
    search_fields = ["title"]
    search_help_text = (
        "Title words, an exact track id, a SHA-256 prefix (6+ hex digits) "
        "or an owner's exact username."
    )
    list_select_related = ["owner"]
    sortable_by = ["created_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
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
        "taken_down_at",
        "takedown_reason",
        "created_at",
        "updated_at",
    ]
    fields = ["title", "visibility", *readonly_fields]
    change_list_template = "admin/tracks/track/change_list.html"
    actions = ["move_to_s3", "move_to_local", "take_down", "restore"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Track], search_term: str
    ) -> tuple[QuerySet[Track], bool]:
        return selectors.track_search(queryset=queryset, term=search_term), False

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

    @admin.action(description="Move selected tracks to S3", permissions=["change"])
    def move_to_s3(self, request: HttpRequest, queryset: QuerySet[Track]) -> None:
        self._queue_move(request, queryset, StorageBackend.S3)

    @admin.action(
        description="Move selected tracks to local disk", permissions=["change"]
    )
    def move_to_local(self, request: HttpRequest, queryset: QuerySet[Track]) -> None:
        self._queue_move(request, queryset, StorageBackend.LOCAL)

    def _queue_move(
        self, request: HttpRequest, queryset: QuerySet[Track], target: str
    ) -> None:
        from tracks.tasks import tracks_move

        try:
            s3_require()  # a move either way reads from S3 or writes to it
        except S3NotConfigured as exc:
            self.message_user(
                request,
                f"Nothing queued. {exc.message} See .env.example.",
                messages.ERROR,
            )
            return
        ids = [
            str(pk)
            for pk in queryset.exclude(storage_backend=target).values_list(
                "pk", flat=True
            )
        ]
        if not ids:
            self.message_user(request, f"All selected tracks are already on {target}.")
            return
        user = getattr(request, "user", None)
        result = tracks_move.enqueue(
            track_ids=ids,
            target=target,
            started_by=f"admin:{getattr(user, 'username', '')}",
        )
        self.message_user(
            request,
            f"Queued a move of {len(ids)} track(s) to {target} (task {result.id}). "
            "Follow it on the storage migration page.",
            messages.SUCCESS,
        )

    @admin.action(description="Take down (DMCA notice)", permissions=["change"])
    def take_down(
        self, request: HttpRequest, queryset: QuerySet[Track]
    ) -> TemplateResponse | None:
        """Ask for the reason on a confirmation page, then take the tracks down."""
        from tracks.services import track_take_down

        form = TakedownForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            already = 0
            for track in queryset:
                if track.taken_down_at is not None:
                    # Keep the first notice's time and reason.
                    already += 1
                    continue
                track_take_down(track=track, reason=form.cleaned_data["reason"])
            done = len(queryset) - already
            self.message_user(
                request,
                f"Took down {done} track(s): every playback route answers 451."
                + (
                    f" {already} were already down and kept as they were."
                    if already
                    else ""
                ),
                messages.SUCCESS,
            )
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Take down tracks",
            "opts": self.model._meta,
            "tracks": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tracks/track/take_down.html", context)

    @admin.action(description="Restore (undo a takedown)", permissions=["change"])
    def restore(self, request: HttpRequest, queryset: QuerySet[Track]) -> None:
        from tracks.services import track_restore

        down = list(queryset.filter(taken_down_at__isnull=False))
        for track in down:
            track_restore(track=track)
        self.message_user(request, f"Restored {len(down)} track(s).", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "storage/",
                self.admin_site.admin_view(self.storage_view),
                name="tracks_track_storage",
            ),
            path(
                "storage/status.json",
                self.admin_site.admin_view(self.storage_status),
                name="tracks_track_storage_status",
            ),
        ]
        return own + super().get_urls()

    def storage_view(self, request: HttpRequest) -> TemplateResponse:
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Storage migration",
            "opts": self.model._meta,
            "status": selectors.storage_migration_status(),
        }
        return TemplateResponse(request, "admin/tracks/storage.html", context)

    def storage_status(self, request: HttpRequest) -> JsonResponse:
        """What the storage page polls to refresh itself without a reload."""
        return JsonResponse(selectors.storage_migration_status())

    def delete_model(self, request: HttpRequest, obj: Track) -> None:
        from tracks.services import track_delete

        track_delete(track=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        from tracks.services import track_delete

        for track in queryset:
            track_delete(track=track)


@admin.register(StorageMigrationRun)
class StorageMigrationRunAdmin(admin.ModelAdmin[StorageMigrationRun]):
    list_display = [
        "pk",
        "target",
        "status",
        "moved",
        "already_there",
        "failed",
        "bytes_moved",
        "started_at",
        "finished_at",
        "hostname",
    ]
    list_filter = ["status", "target"]
    readonly_fields = [f.name for f in StorageMigrationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _usage_text(quota: UploadQuota) -> str:
    """Usage against each limit in force, as staff read it."""
    allowance = selectors.upload_allowance_get(user=quota.user_id)

    def of(used: int, limit: int | None, *, size: bool) -> str:
        shown = filesizeformat if size else str
        return f"{shown(used)} of {shown(limit) if limit is not None else 'no limit'}"

    a = allowance
    return (
        f"storage {of(a.stored_bytes, a.storage_bytes_limit, size=True)}; "
        f"today {of(a.day_bytes, a.daily_bytes_limit, size=True)}, "
        f"{of(a.day_tracks, a.daily_tracks_limit, size=False)} tracks"
    )


QUOTA_LIMITS = ["storage_bytes_limit", "daily_bytes_limit", "daily_tracks_limit"]


def upload_quota_save(quota: UploadQuota) -> None:
    """Save staff's limits only: the usage counters belong to the uploads."""
    if quota._state.adding:
        quota.stored_bytes = selectors.track_bytes_owned(user=quota.user_id)
        quota.save()
    else:
        quota.save(update_fields=QUOTA_LIMITS)


class UploadQuotaInline(admin.StackedInline[UploadQuota, Any]):
    model = UploadQuota
    can_delete = False
    max_num = 1
    verbose_name_plural = "upload quota"
    fields = [*QUOTA_LIMITS, "usage"]
    readonly_fields = ["usage"]

    @admin.display(description="Usage")
    def usage(self, obj: UploadQuota) -> str:
        return _usage_text(obj) if obj.user_id else "-"


class UserWithQuotaAdmin(UserAdmin):  # type: ignore[type-arg]
    inlines = [*UserAdmin.inlines, UploadQuotaInline]

    def save_formset(
        self, request: HttpRequest, form: Any, formset: Any, change: bool
    ) -> None:
        if formset.model is not UploadQuota:
            super().save_formset(request, form, formset, change)
            return
        for quota in formset.save(commit=False):
            upload_quota_save(quota)


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), UserWithQuotaAdmin)


@admin.register(UploadQuota)
class UploadQuotaAdmin(admin.ModelAdmin[UploadQuota]):
    """Every user who has uploaded, biggest first; limits editable here too."""

    list_display = [
        "user",
        "stored",
        "day",
        "day_uploaded",
        "day_tracks",
        *QUOTA_LIMITS,
    ]
    list_select_related = ["user"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ["-stored_bytes"]
    search_fields = ["user__username"]
    fields = ["user", *QUOTA_LIMITS, "usage"]
    readonly_fields = ["user", "usage"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by a user's first upload, or on the user's page

    @admin.display(description="Stored", ordering="stored_bytes")
    def stored(self, obj: UploadQuota) -> str:
        return filesizeformat(obj.stored_bytes)

    @admin.display(description="Uploaded that day", ordering="day_bytes")
    def day_uploaded(self, obj: UploadQuota) -> str:
        return filesizeformat(obj.day_bytes)

    @admin.display(description="Usage")
    def usage(self, obj: UploadQuota) -> str:
        return _usage_text(obj)

    def save_model(
        self, request: HttpRequest, obj: UploadQuota, form: Any, change: bool
    ) -> None:
        upload_quota_save(obj)


@admin.register(UploadSession)
class UploadSessionAdmin(admin.ModelAdmin[UploadSession]):
    """Resumable uploads: those in progress with their offsets, and failures."""

    list_display = [
        "id",
        "owner",
        "filename",
        "status",
        "progress",
        "error_code",
        "expires_at",
    ]
    list_filter = ["status"]
    list_select_related = ["owner"]
    # Exact usernames: a substring search would read every row.
    search_fields = ["=owner__username"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ["-created_at"]
    readonly_fields = [f.name for f in UploadSession._meta.fields] + ["progress"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are opened by clients (tus)

    def has_change_permission(
        self, request: HttpRequest, obj: UploadSession | None = None
    ) -> bool:
        return False

    @admin.display(description="Received")
    def progress(self, obj: UploadSession) -> str:
        percent = 100 * obj.offset / obj.length if obj.length else 0
        done, total = filesizeformat(obj.offset), filesizeformat(obj.length)
        return f"{done} of {total} ({percent:.0f} %)"
