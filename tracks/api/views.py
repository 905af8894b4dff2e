"""HTTP API of tracks: thin views over the services and selectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tracks import selectors, services
from tracks.api.serializers import (
    ErrorOutputSerializer,
    PlaybackUrlOutputSerializer,
    TrackCreateInputSerializer,
    TrackOutputSerializer,
    TrackUpdateInputSerializer,
)
from tracks.errors import UploadMissing
from tracks.playback import Kind, track_playback_url
from tracks.uploads import HashingUploadHandler, StagedUpload
from veza.pagination import NewestFirstPagination

ERRORS = {
    400: ErrorOutputSerializer,
    401: ErrorOutputSerializer,
    403: ErrorOutputSerializer,
    404: ErrorOutputSerializer,
}


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
        responses={200: TrackOutputSerializer(many=True), **ERRORS},
        operation_id="tracks_list",
    )
    def get(self, request: Request) -> Response:
        tracks = selectors.track_list_visible(user=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(tracks, request, view=self)
        return paginator.get_paginated_response(
            TrackOutputSerializer(page, many=True).data
        )

    @extend_schema(
        request={"multipart/form-data": TrackCreateInputSerializer},
        responses={
            201: TrackOutputSerializer,
            413: ErrorOutputSerializer,
            415: ErrorOutputSerializer,
            503: ErrorOutputSerializer,
            **ERRORS,
        },
        operation_id="tracks_upload",
    )
    def post(self, request: Request) -> Response:
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
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        responses={200: TrackOutputSerializer, **ERRORS}, operation_id="tracks_retrieve"
    )
    def get(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_visible(user=request.user, track_id=track_id)
        return Response(TrackOutputSerializer(track).data)

    @extend_schema(
        request=TrackUpdateInputSerializer,
        responses={200: TrackOutputSerializer, **ERRORS},
        operation_id="tracks_update",
    )
    def patch(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_owned(user=request.user, track_id=track_id)
        data = TrackUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = services.track_update(track=track, **data.validated_data)
        return Response(TrackOutputSerializer(track).data)

    @extend_schema(responses={204: None, **ERRORS}, operation_id="tracks_delete")
    def delete(self, request: Request, track_id: str) -> Response:
        track = selectors.track_get_owned(user=request.user, track_id=track_id)
        services.track_delete(track=track)
        return Response(status=204)


class TrackPlaybackView(APIView):
    kind: Kind = "stream"
    # JSON in debug too, where the browsable API is on for the other views.
    renderer_classes = [JSONRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("redirect", bool, description="Answer 302 to the URL.")
        ],
        responses={200: PlaybackUrlOutputSerializer, 302: None, **ERRORS},
    )
    def get(self, request: Request, track_id: str) -> HttpResponseBase:
        track = selectors.track_get_playable(user=request.user, track_id=track_id)
        url = track_playback_url(
            track=track, kind=self.kind, origin_base=request.build_absolute_uri("/")
        )
        if request.query_params.get("redirect") in ("1", "true"):
            return HttpResponseRedirect(url.url)
        expires = dt.datetime.fromtimestamp(url.expires_at, tz=dt.UTC)
        return Response({"url": url.url, "expires_at": expires, "source": url.source})


class TrackStreamView(TrackPlaybackView):
    kind = "stream"


class TrackDownloadView(TrackPlaybackView):
    kind = "download"
