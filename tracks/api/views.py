"""HTTP API of tracks: thin views over the services and selectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiRequest,
    extend_schema,
    extend_schema_view,
)
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tracks import selectors, services
from tracks.api.serializers import (
    PlaybackUrlOutputSerializer,
    TrackCreateInputSerializer,
    TrackOutputSerializer,
    TrackUpdateInputSerializer,
    UploadQuotaOutputSerializer,
)
from tracks.errors import UploadMissing
from tracks.media_types import FORMATS
from tracks.playback import Kind, track_playback_url
from tracks.uploads import MULTIPART_OVERHEAD, HashingUploadHandler, StagedUpload
from veza.errors import InvalidParameter
from veza.openapi import error_responses
from veza.pagination import NewestFirstPagination, newest_first_page

# The formats an upload may be in, as the multipart part's media types. The
# server reads the bytes, not the part's Content-Type, to tell.
AUDIO_MEDIA_TYPES = ", ".join(sorted({f.mime_type for f in FORMATS.values()}))


class TrackListView(APIView):
    # Also what the schema documents the list's pages and parameters by.
    pagination_class = NewestFirstPagination
    parser_classes = [MultiPartParser]

    def initialize_request(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Request:
        # Set before anything (CSRF, auth) can read the body with the default
        # handlers, which would keep small files in memory and not hash them.
        try:
            content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            content_length = 0  # the multipart parser refuses it with a 400
        self.content_length = content_length
        self.upload_handler = HashingUploadHandler(
            request,
            max_bytes=settings.TRACK_MAX_UPLOAD_BYTES,
            staging_dir=settings.VAR_DIR / "uploads",
            want_md5=settings.TRACK_STORAGE_BACKEND == "s3"
            and content_length < settings.AWS_S3_MULTIPART_THRESHOLD,
        )
        request.upload_handlers = [self.upload_handler]
        return super().initialize_request(request, *args, **kwargs)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        self.upload_handler.cleanup()
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        responses={200: TrackOutputSerializer(many=True), **error_responses(400, 401)},
        operation_id="tracks_list",
        summary="List tracks",
        description="Your tracks and every public one, newest first, a page "
        "at a time. Follow `next` for the following page; 400 "
        "`invalid_cursor` for a cursor the list did not give out.",
    )
    def get(self, request: Request) -> Response:
        tracks = selectors.track_list_visible(user=request.user)
        return newest_first_page(
            request=request,
            view=self,
            queryset=tracks,
            serializer=TrackOutputSerializer,
        )

    @extend_schema(
        request={
            "multipart/form-data": OpenApiRequest(
                TrackCreateInputSerializer,
                encoding={"file": {"contentType": AUDIO_MEDIA_TYPES}},
            )
        },
        responses={
            201: TrackOutputSerializer,
            **error_responses(400, 401, 403, 413, 415, 422, 429, 503),
        },
        operation_id="tracks_upload",
        summary="Upload a track",
        description="Store an audio file (the multipart part `file`) as a new "
        "track. The bytes decide the format: a file that is not decodable "
        "audio in one of the listed formats is a 415 (`not_audio`, "
        "`undecodable_audio`, `truncated_audio`, `no_duration`), an empty one "
        "a 400 `empty_file`, one above the size limit a 413, audio longer "
        "than the duration limit a 422 `audio_too_long`. 403 is a "
        "session caller without the CSRF token. Per-user limits "
        "(`GET /api/v1/uploads/quota`): 413 `storage_quota_exceeded` past "
        "the storage quota, 429 `daily_track_limit` or `daily_byte_limit` "
        "past a daily limit, with Retry-After until the next UTC midnight; "
        "a body whose declared length cannot fit is refused before it is read.",
    )
    def post(self, request: Request) -> Response:
        # Refuse before reading the body when even its declared length (less
        # the multipart framing) cannot fit; track_create checks exactly.
        selectors.upload_allowance_get(user=request.user).refuse_if_over(
            size=max(self.content_length - MULTIPART_OVERHEAD, 0)
        )
        upload = request.FILES.get("file")
        if not isinstance(upload, StagedUpload):
            raise UploadMissing()
        data = TrackCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = services.track_create(
            owner=request.user,
            upload=upload,
            title=data.validated_data.get("title"),
            visibility=data.validated_data["visibility"],
        )
        return Response(TrackOutputSerializer(track).data, status=201)


class TrackDetailView(APIView):
    # JSON only: form encodings have no way to say "an empty title" from
    # "no title", and Django's multipart parser skips parts it cannot read.
    parser_classes = [JSONParser]

    @extend_schema(
        responses={200: TrackOutputSerializer, **error_responses(401, 404)},
        operation_id="tracks_retrieve",
        summary="Get a track",
        description="One of your tracks, or a public or unlisted one; 404 "
        "`track_not_found` for any other id.",
    )
    def get(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_visible(user=request.user, track_id=track_id)
        return Response(TrackOutputSerializer(track).data)

    @extend_schema(
        request=TrackUpdateInputSerializer,
        responses={
            200: TrackOutputSerializer,
            **error_responses(400, 401, 403, 404, 415),
        },
        operation_id="tracks_update",
        summary="Change a track",
        description="Retitle one of your tracks or change who may play it. "
        "Making a track private takes it off the public list at once and "
        "revokes the origin URLs handed out while it was shared. JSON only "
        "(415 for another body type).",
    )
    def patch(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_owned(user=request.user, track_id=track_id)
        data = TrackUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = services.track_update(track=track, **data.validated_data)
        return Response(TrackOutputSerializer(track).data)

    @extend_schema(
        responses={204: None, **error_responses(401, 403, 404)},
        operation_id="tracks_delete",
        summary="Delete a track",
        description="Delete one of your tracks with its stored bytes and HLS package.",
    )
    def delete(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_owned(user=request.user, track_id=track_id)
        services.track_delete(track=track)
        return Response(status=204)


# `?redirect=`: the values a boolean query parameter is written as.
REDIRECT_VALUES = {"true": True, "1": True, "false": False, "0": False}


class TrackPlaybackView(APIView):
    kind: Kind = "stream"
    # JSON in debug too, where the browsable API is on for the other views.
    renderer_classes = [JSONRenderer]

    def get(self, request: Request, track_id: str) -> HttpResponseBase:
        redirect = REDIRECT_VALUES.get(request.query_params.get("redirect", "false"))
        if redirect is None:
            raise InvalidParameter(
                "redirect is true or false.", details={"parameter": "redirect"}
            )
        track = selectors.track_get_playable(user=request.user, track_id=track_id)
        url = track_playback_url(
            track=track, kind=self.kind, origin_base=request.build_absolute_uri("/")
        )
        if redirect:
            return HttpResponseRedirect(url.url)
        expires = dt.datetime.fromtimestamp(url.expires_at, tz=dt.UTC)
        return Response({"url": url.url, "expires_at": expires, "source": url.source})


def _playback_schema(kind: Kind, summary: str, use: str) -> Any:
    schema = extend_schema(
        parameters=[
            OpenApiParameter(
                "redirect",
                str,
                enum=list(REDIRECT_VALUES),
                description="`true` (or `1`): answer 302 to the URL instead of JSON.",
            )
        ],
        responses={
            200: PlaybackUrlOutputSerializer,
            302: None,
            **error_responses(400, 401, 404, 451, 503),
        },
        operation_id=f"tracks_{kind}",
        summary=summary,
        description=f"A signed URL {use}, valid until `expires_at`: from the "
        "CDN when one is configured, else presigned S3 or this server's "
        "origin. 451 `track_taken_down` for a track taken down; 503 "
        "`cdn_unavailable` when CDN signing fails and CDN_FALLBACK=none.",
    )
    return extend_schema_view(get=schema)


@_playback_schema("stream", "Stream a track", "to play the original file")
class TrackStreamView(TrackPlaybackView):
    kind = "stream"


@_playback_schema("download", "Download a track", "that downloads the original")
class TrackDownloadView(TrackPlaybackView):
    kind = "download"


class UploadQuotaView(APIView):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        responses={200: UploadQuotaOutputSerializer, **error_responses(401)},
        operation_id="uploads_quota",
        summary="Your upload limits",
        description="How many bytes of tracks you may keep and upload per "
        "UTC day, how many tracks per day, and how much of each you have "
        "used. A null limit is no limit. Staff set a user's own limits in "
        "the admin.",
    )
    def get(self, request: Request) -> Response:
        allowance = selectors.upload_allowance_get(user=request.user)
        return Response(UploadQuotaOutputSerializer(allowance).data)
