"""Staff pages for HLS packages, and the packages of a track on its page.

The track page's package list is added here, not in tracks/admin.py:
tracks must not import streaming (veza <- cdn <- tracks <- streaming). This
module subclasses the registered TrackAdmin and registers the subclass in
its place, which keeps everything TrackAdmin has and needs only public
admin API. The list is a read-only field rather than an inline: packages
are written only by the packager, and an inline formset, even a view-only
one, would make every save of a track require its management-form data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from streaming.models import HlsPackage, PackageStatus
from streaming.services import hls_package_request, superseded_grace_seconds
from tracks.admin import TrackAdmin
from tracks.models import Track
from tracks.templatetags.humanize_bytes import bytes_human


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _decibels(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f} {unit}"


@admin.register(HlsPackage)
class HlsPackageAdmin(admin.ModelAdmin[HlsPackage]):
    # What fits a laptop's width beside the filters; the rest (segments,
    # true peak, the error's text, attempts, timings) is on a package's page.
    list_display = [
        "short_hash",
        "track_title",
        "state",
        "storage_backend",
        "duration",
        "size",
        "loudness",
        "error_reason",
        "finished_at",
    ]
    list_filter = [
        "status",
        ("superseded_at", admin.EmptyFieldListFilter),
        "storage_backend",
        "error_code",
    ]
    # "^" so the 12 characters shown in the list find the package.
    search_fields = ["track__title", "=track__id", "^content_hash"]
    list_select_related = ["track"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "track",
                    "status",
                    "error_code",
                    "error",
                    "attempts",
                    "storage_backend",
                    "content_hash",
                    "directory",
                ]
            },
        ),
        (
            "Audio",
            {
                "fields": [
                    "duration",
                    "segment_count",
                    "size",
                    "loudness",
                    "true_peak",
                    "renditions_text",
                    "settings_text",
                ]
            },
        ),
        (
            "Timings",
            {
                "fields": [
                    "created_at",
                    "started_at",
                    "finished_at",
                    "superseded_at",
                    "retires_at",
                    "lease_until",
                    "encode_time",
                    "store_time",
                ]
            },
        ),
        ("Files", {"classes": ["collapse"], "fields": ["files"]}),
    ]
    actions = ["package_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Packages come from the packager (uploads, package_hls, retries).
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: HlsPackage | None = None
    ) -> bool:
        # View only: every field is the packager's to write.
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("streaming.change_hlspackage")

    @admin.display(description="error", ordering="error_code")
    def error_reason(self, obj: HlsPackage) -> SafeString:
        # The code in the column, the reason on hover (and on its page).
        if not obj.error_code:
            return format_html("{}", "-")
        return format_html(
            '<span title="{}">{}</span>',
            Truncator(obj.error).chars(300),
            obj.error_code,
        )

    @admin.display(description="status", ordering="status")
    def state(self, obj: HlsPackage) -> str:
        # A superseded package still serves players holding its URLs.
        if obj.superseded_at is not None:
            return f"{obj.get_status_display()}, superseded"
        return obj.get_status_display()

    @admin.display(description="deleted after")
    def retires_at(self, obj: HlsPackage) -> str:
        if obj.superseded_at is None:
            return "-"
        when = obj.superseded_at + timedelta(seconds=superseded_grace_seconds())
        return f"{when:%Y-%m-%d %H:%M} UTC (superseded; the grace period)"

    @admin.display(description="track", ordering="track__title")
    def track_title(self, obj: HlsPackage) -> str:
        return Truncator(obj.track.title).chars(40)

    @admin.display(description="encode time")
    def encode_time(self, obj: HlsPackage) -> str:
        return _seconds(obj.encode_seconds)

    @admin.display(description="store time")
    def store_time(self, obj: HlsPackage) -> str:
        return _seconds(obj.store_seconds)

    @admin.display(description="renditions")
    def renditions_text(self, obj: HlsPackage) -> SafeString:
        rows = [
            (
                r.get("name", "?"),
                round(int(r.get("bitrate", 0)) / 1000),
                r.get("codecs", ""),
                len(r.get("segments", [])),
                # Packager 3 on: one file read by ranges; before, a file each.
                f"in {r['file']}" if r.get("file") else "a file each",
            )
            for r in obj.renditions
        ]
        if not rows:
            return format_html("{}", "-")
        return format_html_join(
            mark_safe("<br>"),
            "{}: {} kb/s, {}, {} segments {}",
            rows,
        )

    @admin.display(description="settings")
    def settings_text(self, obj: HlsPackage) -> str:
        rates = ", ".join(str(kbps) for kbps in obj.settings.get("ladder", []))
        seconds = obj.settings.get("segment_seconds", "?")
        version = obj.settings.get("packager", "?")
        return f"ladder {rates} kb/s, {seconds} s segments, packager {version}"

    @admin.display(description="package", ordering="content_hash")
    def short_hash(self, obj: HlsPackage) -> str:
        return obj.content_hash[:12]

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, obj: HlsPackage) -> str:
        return _duration(obj.duration_seconds)

    @admin.display(description="size", ordering="total_bytes")
    def size(self, obj: HlsPackage) -> str:
        return bytes_human(obj.total_bytes)

    @admin.display(description="loudness", ordering="loudness_lufs")
    def loudness(self, obj: HlsPackage) -> str:
        return _decibels(obj.loudness_lufs, "LUFS")

    @admin.display(description="true peak", ordering="true_peak_dbtp")
    def true_peak(self, obj: HlsPackage) -> str:
        return _decibels(obj.true_peak_dbtp, "dBTP")

    @admin.display(description="directory")
    def directory(self, obj: HlsPackage) -> str:
        return obj.directory

    @admin.action(
        description="Package again (queue a rebuild for the task workers)",
        permissions=["retry"],
    )
    def package_again(
        self, request: HttpRequest, queryset: QuerySet[HlsPackage]
    ) -> None:
        # One rebuild per track, for the current settings: a package of an
        # older ladder is replaced by the current one, not rebuilt as it was.
        tracks = {p.track_id: p.track for p in queryset.select_related("track")}
        down = [t for t in tracks.values() if t.taken_down_at is not None]
        for track in tracks.values():
            if track.taken_down_at is None:
                hls_package_request(track=track, force=True)
        queued = len(tracks) - len(down)
        if queued:
            self.message_user(
                request,
                f"Queued {queued} package build(s) for the task workers.",
                messages.SUCCESS,
            )
        if down:
            self.message_user(
                request,
                f"Left {len(down)} taken-down track(s) alone: "
                + ", ".join(t.title for t in down),
                messages.WARNING,
            )


class TrackWithPackagesAdmin(TrackAdmin):
    """TrackAdmin plus the track's HLS packages on its page."""

    def get_readonly_fields(
        self, request: HttpRequest, obj: Track | None = None
    ) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "hls_packages"]

    def get_fields(self, request: HttpRequest, obj: Track | None = None) -> Any:
        return [*super().get_fields(request, obj), "hls_packages"]

    @admin.display(description="HLS packages")
    def hls_packages(self, obj: Track) -> SafeString | str:
        packages = list(
            HlsPackage.objects.filter(track_id=obj.pk).order_by("-created_at")
        )
        if not packages:
            return "None yet."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:streaming_hlspackage_change", args=[p.pk]),
                    p.content_hash[:12],
                    p.get_status_display(),
                    p.storage_backend,
                    _duration(p.duration_seconds),
                    bytes_human(p.total_bytes),
                    _decibels(p.loudness_lufs, "LUFS"),
                    p.error_code,
                    Truncator(p.error).chars(160)
                    if p.status == PackageStatus.FAILED
                    else "",
                )
                for p in packages
            ),
        )
        listing = reverse("admin:streaming_hlspackage_changelist")
        return format_html(
            "<table><thead><tr><th>Package</th><th>Status</th><th>Backend</th>"
            "<th>Duration</th><th>Size</th><th>Loudness</th><th>Error code</th>"
            "<th>Reason</th></tr></thead><tbody>{}</tbody></table>"
            "<p><a href='{}?track__exact={}'>All packages of this track</a></p>",
            rows,
            listing,
            obj.pk,
        )


admin.site.unregister(Track)
admin.site.register(Track, TrackWithPackagesAdmin)
