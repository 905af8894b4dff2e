"""HTTP API of streaming: the HLS master playlist URL of a track."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from streaming.api.serializers import MISSING, HlsOutputSerializer
from streaming.errors import WaveformNotReady
from streaming.loudness import normalising_gain_db
from streaming.models import PackageStatus
from streaming.playback import hls_master_url
from streaming.selectors import hls_package_for_track, track_waveform
from streaming.services import hls_package_request
from tracks import selectors as track_selectors
from tracks.models import SHARED_VISIBILITIES
from veza.openapi import error_responses


class TrackHlsView(APIView):
    # Anyone may play a public or unlisted track (the embeddable player has
    # no user); track_get_playable applies the same rule as the stream API.
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: HlsOutputSerializer, **error_responses(401, 404, 451, 503)},
        operation_id="tracks_hls",
        summary="Play a track over HLS",
        description=(
            "The track's HLS master playlist URL, valid until `expires_at`. "
            "Its relative URIs carry the authorisation (a token in the path, "
            "or CloudFront cookies set on this response). Only a `ready` "
            "package has a URL; a track with no package is queued for "
            "packaging (`pending`). 451 when the track was taken down."
        ),
    )
    def get(self, request: Request, track_id: str) -> Response:
        track = track_selectors.track_get_playable(user=request.user, track_id=track_id)
        package = hls_package_for_track(track=track)
        if package is None and settings.HLS_PACKAGE_ON_UPLOAD:
            # A track from before HLS (or whose row was deleted) is queued on
            # first play, as uploads are; the request is idempotent.
            package = hls_package_request(track=track)
        if package is None or package.status != PackageStatus.READY:
            status = MISSING if package is None else package.status
            return _no_store(
                Response(
                    {
                        "status": status,
                        "master_url": None,
                        "expires_at": None,
                        "source": None,
                        "loudness": None,
                    }
                )
            )
        url = hls_master_url(
            package=package,
            shared=track.visibility in SHARED_VISIBILITIES,
            origin_base=request.build_absolute_uri("/"),
        )
        response = Response(
            {
                "status": package.status,
                "master_url": url.url,
                "expires_at": dt.datetime.fromtimestamp(url.expires_at, tz=dt.UTC),
                "source": url.source,
                "loudness": {
                    "integrated_lufs": package.loudness_lufs,
                    "true_peak_dbtp": package.true_peak_dbtp,
                    "gain_db": normalising_gain_db(
                        integrated_lufs=package.loudness_lufs,
                        true_peak_dbtp=package.true_peak_dbtp,
                        target_lufs=settings.PLAYER_TARGET_LUFS,
                    ),
                },
            }
        )
        for name, value in url.cookies.items():
            # Session cookies (no Max-Age), as AWS advises: the signed policy
            # carries the expiry. SameSite=None so an embedded player on
            # another site still sends them to the CDN.
            response.set_cookie(
                name,
                value,
                path=url.cookie_path,
                domain=url.cookie_domain,
                secure=True,
                httponly=True,
                samesite="None",
            )
        return _no_store(response)


def _no_store(response: Response) -> Response:
    # The body holds a short-lived signed URL (and maybe signed cookies):
    # nothing between the API and the player may keep it.
    response["Cache-Control"] = "private, no-store"
    return response


class TrackWaveformView(APIView):
    # The same rule as the audio: anyone may see a public or unlisted track's
    # waveform, only its owner a private one's.
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            (200, "application/json"): dict,
            **error_responses(401, 404, 409, 451, 503),
        },
        operation_id="tracks_waveform",
        summary="A track's waveform",
        description=(
            "The peaks of the track, in the BBC audiowaveform JSON format, "
            "version 2 (`version`, `channels`, `sample_rate`, "
            "`samples_per_pixel`, `bits` 8, `length`, `data`: min, max, "
            "... for each of at most 2,000 points). Made when the track is "
            "packaged for HLS: 409 `waveform_not_ready` until then (the "
            "packaging is queued). 451 when the track was taken down."
        ),
    )
    def get(self, request: Request, track_id: str) -> HttpResponse:
        track = track_selectors.track_get_playable(user=request.user, track_id=track_id)
        try:
            body = track_waveform(track=track)
        except WaveformNotReady:
            if settings.HLS_PACKAGE_ON_UPLOAD:
                # Idempotent: queues the current package unless it is ready.
                hls_package_request(track=track)
            raise
        response = HttpResponse(body, content_type="application/json")
        # The track's access rules hold per request, as for the audio; the
        # peaks never change, so a browser keeps them a while.
        patch_cache_control(response, private=True, max_age=300)
        return response
