"""HTTP API of tracks: thin views over the services and selectors."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
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
from tracks.playback import Kind, PlaybackUrl, track_playback_url
from tracks.uploads import HashingUploadHandler, StagedUpload
from veza.authentication import (
    CachedTokenAuthentication,
    token_credentials_cached,
    token_key,
)
from veza.negotiation import JsonFirstNegotiation
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
    # JSON even in debug, where the browsable API is on: the answer is JSON
    # either way, and one renderer means no negotiation that could refuse it.
    renderer_classes = [JSONRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("redirect", bool, description="Answer 302 to the URL.")
        ],
        responses={200: PlaybackUrlOutputSerializer, 302: None, **ERRORS},
    )
    def get(self, request: Request, track_id: str) -> HttpResponse:
        return self.answer(request, user=request.user, track_id=track_id)

    # A method, so that View.setup does not store head = self.get on each
    # view: that reference cycle was left to the garbage collector.
    def head(self, request: Request, track_id: str) -> HttpResponse:
        return self.get(request, track_id)

    def answer(
        self, request: HttpRequest | Request, *, user: Any, track_id: str
    ) -> HttpResponse:
        track = selectors.track_get_playable(user=user, track_id=track_id)
        # build_absolute_uri("/"), without its parsing and quoting of "/" (a
        # validated host needs no quoting).
        origin_base = f"{request.scheme}://{request.get_host()}/"
        url = track_playback_url(track=track, kind=self.kind, origin_base=origin_base)
        # Most calls have no query string, and parsing one builds a QueryDict.
        if request.META.get("QUERY_STRING") and request.GET.get("redirect") in (
            "1",
            "true",
        ):
            return HttpResponseRedirect(url.url)
        return HttpResponse(playback_json(url), content_type="application/json")

    def dispatch(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        """DRF's dispatch, done by hand for a GET whose token is cached.

        That is nearly every call of the busiest endpoint, and DRF's request,
        policy objects and negotiation were a quarter of its time. By hand
        means what DRF would do under this view's policies (token auth first,
        IsAuthenticated, no throttle, JSON only): the cached token's user is
        the caller and may call, errors go to DRF's exception handling, and
        the answer gets DRF's default headers. Any other call takes DRF's way.
        """
        headers = _shortcut_headers(self)
        credentials = None if headers is None else self._cached_credentials(request)
        if headers is None or credentials is None:
            return super().dispatch(request, *args, **kwargs)
        request.user = credentials[0]  # as DRF's authentication sets it
        try:
            response = self.answer(
                request, user=credentials[0], track_id=kwargs["track_id"]
            )
        except Exception as exc:  # DRF's exception handler answers it
            return self._error_response(request, exc, credentials, *args, **kwargs)
        for name, value in headers.items():
            response[name] = value
        return response

    def _cached_credentials(self, request: HttpRequest) -> tuple[Any, Token] | None:
        if (
            request.method != "GET"
            # DRF's test client authenticates in its own way.
            or getattr(request, "_force_auth_user", None) is not None
            or getattr(request, "_force_auth_token", None) is not None
        ):
            return None
        key = token_key(request.META.get("HTTP_AUTHORIZATION", ""))
        if key is None:
            return None
        try:
            return token_credentials_cached(key)
        except Exception:  # DRF's way meets it again, and answers it
            return None

    def _error_response(
        self,
        request: HttpRequest,
        exc: Exception,
        credentials: tuple[Any, Token],
        *args: Any,
        **kwargs: Any,
    ) -> HttpResponseBase:
        # DRF's dispatch with `exc` raised by the handler: the request
        # (authenticated already) and its checks, which pass as they did, for
        # the exception handler's context; its answer; the final headers.
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        drf_request.user, drf_request.auth = credentials
        self.request = drf_request
        self.headers = self.default_response_headers
        self.initial(drf_request, *args, **kwargs)
        response = self.handle_exception(exc)
        return self.finalize_response(drf_request, response, *args, **kwargs)


_shortcut_headers_by_view: dict[type[APIView], dict[str, str] | None] = {}


def _shortcut_headers(view: APIView) -> dict[str, str] | None:
    """DRF's default headers of `view`'s answers, if its DRF policies are
    those TrackPlaybackView.dispatch applies by hand; None if they are not,
    and every call takes DRF's way. Both depend on the class alone."""
    cls = type(view)
    if cls not in _shortcut_headers_by_view:
        authenticators = cls.authentication_classes
        permissions = cls.permission_classes
        by_hand = (
            len(authenticators) > 0
            and authenticators[0] is CachedTokenAuthentication
            and len(permissions) == 1
            and permissions[0] is IsAuthenticated
            and not cls.throttle_classes
            and cls.versioning_class is None
            and len(cls.renderer_classes) == 1
            and cls.content_negotiation_class is JsonFirstNegotiation
        )
        _shortcut_headers_by_view[cls] = (
            dict(view.default_response_headers) if by_hand else None
        )
    return _shortcut_headers_by_view[cls]


@functools.lru_cache(maxsize=1024)
def playback_json(url: PlaybackUrl) -> bytes:
    """The JSON body of a playback answer, what JsonResponse would write.

    Rendered once per URL, since one URL is handed out for minutes: this is
    the busiest endpoint, and DRF's render pass was a tenth of it.
    """
    expires = dt.datetime.fromtimestamp(url.expires_at, tz=dt.UTC)
    data = {"url": url.url, "expires_at": expires, "source": url.source}
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


class TrackStreamView(TrackPlaybackView):
    kind = "stream"


class TrackDownloadView(TrackPlaybackView):
    kind = "download"
