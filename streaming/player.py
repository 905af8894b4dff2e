"""The embeddable HLS player page: `/tracks/<id>/play`.

The page itself carries no media URL: its script asks the HLS API
(`GET /api/v1/tracks/<id>/hls`) for a short-lived master playlist URL, so the
page can be cached by the browser and embedded anywhere while the bytes stay
behind the API's access rules and tokens.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from cdn.services import cdn_is_enabled
from tracks.errors import TrackProcessing, TrackTakenDown
from tracks.models import Track
from tracks.selectors import track_get_playable
from veza.errors import NotFound

PLAYER_TEMPLATE = "streaming/player.html"
UNAVAILABLE_TEMPLATE = "streaming/player_unavailable.html"


def frame_ancestors() -> str:
    """The CSP `frame-ancestors` source list from HLS_PLAYER_FRAME_ANCESTORS.

    Entries that would break out of the directive (`;`, `,`, whitespace) are
    dropped; an empty list means no site may frame the page.
    """
    sources = [
        source
        for source in (str(s).strip() for s in settings.HLS_PLAYER_FRAME_ANCESTORS)
        if source and not any(c in source for c in ";,\r\n\t ")
    ]
    return " ".join(sources) or "'none'"


def _embeddable(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
    # The page shows a private track's title to its owner: never shared.
    patch_cache_control(response, private=True, no_cache=True)
    return response


def cdn_sends_cookies() -> bool:
    """Whether HLS files on the CDN are authorised by cookies (CloudFront).

    The API sets them for the CDN's domain; hls.js must then fetch with
    credentials, which the distribution's CORS policy has to allow
    (`Access-Control-Allow-Credentials: true` and the page's origin echoed).
    """
    return cdn_is_enabled() and settings.CDN_PROVIDER == "cloudfront"


def format_duration(seconds: float | None) -> str:
    """`3:07`, `1:02:03`; an empty string when unknown."""
    if seconds is None or seconds < 0:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def _unavailable(
    request: HttpRequest, *, status: int, heading: str, message: str
) -> HttpResponse:
    response = render(
        request,
        UNAVAILABLE_TEMPLATE,
        {"heading": heading, "message": message},
        status=status,
    )
    return _embeddable(response)


def _not_found(request: HttpRequest) -> HttpResponse:
    return _unavailable(
        request,
        status=404,
        heading="Track not found",
        message="This track does not exist or is not shared with you.",
    )


@xframe_options_exempt
@require_safe
def track_player(request: HttpRequest, track_id: uuid.UUID) -> HttpResponse:
    """Play a track over HLS: public and unlisted tracks for anyone, private
    ones for their owner's session; 404 otherwise, 451 once taken down."""
    try:
        track = track_get_playable(user=request.user, track_id=track_id)
    except NotFound:
        return _not_found(request)
    except (TrackTakenDown, TrackProcessing) as exc:
        return _unavailable(
            request,
            status=exc.status_code,
            heading="Track unavailable",
            message=exc.message,
        )
    # The playback columns come from a cache; title, duration and owner are
    # not among them, so one indexed read by primary key.
    details = (
        Track.objects.filter(pk=track.pk)
        .order_by()
        .values("title", "duration_seconds", "owner__username")
        .first()
    )
    if details is None:  # deleted since the playback columns were cached
        return _not_found(request)
    duration = details["duration_seconds"]
    response = render(
        request,
        PLAYER_TEMPLATE,
        {
            "track_id": str(track.pk),
            "title": details["title"],
            "owner": details["owner__username"],
            "duration": format_duration(duration),
            "duration_iso": f"PT{round(duration or 0)}S",
            # Unlocalised: read by the script and by the slider's ARIA.
            "duration_seconds": round(duration or 0),
            "duration_exact": f"{duration:.3f}" if duration else "",
            "hls_api_url": f"/api/v1/tracks/{track.pk}/hls",
            "waveform_api_url": f"/api/v1/tracks/{track.pk}/waveform",
            "autoplay": request.GET.get("autoplay") == "1",
            "cdn_credentials": cdn_sends_cookies(),
        },
    )
    return _embeddable(response)
