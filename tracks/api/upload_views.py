"""Resumable uploads over HTTP: the sessions API and tus 1.0.0."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.http import http_date
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tracks import selectors
from tracks.api.serializers import (
    S3MultipartCreateInputSerializer,
    UploadSessionOutputSerializer,
)
from tracks.errors import InvalidUploadHeader, TusVersionUnsupported
from tracks.models import UploadSession, Visibility
from tracks.tus import (
    CHECKSUM_ALGORITHMS,
    CHUNK_CONTENT_TYPE,
    EXTENSIONS,
    TUS_VERSION,
    parse_checksum,
    parse_metadata,
    parse_size,
)
from tracks.upload_sessions import (
    s3_multipart_complete,
    s3_multipart_parts,
    s3_multipart_sign_part,
    s3_multipart_start,
    upload_session_append,
    upload_session_create,
    upload_session_refuse_expired,
    upload_session_terminate,
)
from veza.errors import UnsupportedMedia
from veza.openapi import error_responses
from veza.pagination import NewestFirstPagination, newest_first_page


class UploadSessionListView(APIView):
    pagination_class = NewestFirstPagination

    @extend_schema(
        responses={
            200: UploadSessionOutputSerializer(many=True),
            **error_responses(400, 401),
        },
        operation_id="uploads_list",
        summary="List your resumable uploads",
        description="Your upload sessions, newest first, a page at a time: "
        "their status (`receiving`, `processing`, `ready`, `failed`, "
        "`expired`), how many bytes are in, and the track once ready.",
    )
    def get(self, request: Request) -> Response:
        sessions = selectors.upload_session_list(user=request.user)
        return newest_first_page(
            request=request,
            view=self,
            queryset=sessions,
            serializer=UploadSessionOutputSerializer,
        )


class UploadSessionDetailView(APIView):
    @extend_schema(
        responses={200: UploadSessionOutputSerializer, **error_responses(401, 404)},
        operation_id="uploads_retrieve",
        summary="Get a resumable upload",
        description="One of your upload sessions; 404 `upload_not_found` for "
        "any other id. Poll it after the last byte: `processing` becomes "
        "`ready` with `track`, or `failed` with `error`.",
    )
    def get(self, request: Request, upload_id: str) -> Response:
        session = selectors.upload_session_get_owned(
            user=request.user, upload_id=upload_id
        )
        return Response(UploadSessionOutputSerializer(session).data)


def _offset_headers(session: UploadSession) -> dict[str, str]:
    return {
        "Upload-Offset": str(session.offset),
        "Upload-Expires": http_date(session.expires_at.timestamp()),
    }


@extend_schema(exclude=True)  # tus 1.0.0 (tus.io) is the contract, not OpenAPI
class TusView(APIView):
    """What every tus request shares: the version check and headers."""

    renderer_classes = [JSONRenderer]
    parser_classes: list[Any] = []  # PATCH bodies are read as a stream

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if (
            request.method != "OPTIONS"
            and request.headers.get("Tus-Resumable") != TUS_VERSION
        ):
            raise TusVersionUnsupported()

    def check_permissions(self, request: Request) -> None:
        # OPTIONS tells anyone what the server supports (a browser's CORS
        # preflight carries no credentials).
        if request.method != "OPTIONS":
            super().check_permissions(request)

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return Response(
            status=204,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(settings.TRACK_MAX_UPLOAD_BYTES),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            },
        )

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        response["Cache-Control"] = "no-store"
        return response

    def append(
        self, request: Request, session: UploadSession, *, offset: int | None = None
    ) -> UploadSession:
        """The request's body as the chunk at Upload-Offset (or `offset`)."""
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != CHUNK_CONTENT_TYPE:
            raise UnsupportedMedia(
                f"A chunk's Content-Type is {CHUNK_CONTENT_TYPE}.",
                code="unsupported_media_type",
            )
        if offset is None:
            offset = parse_size(
                request.headers.get("Upload-Offset"), header="Upload-Offset"
            )
        declared = request.META.get("CONTENT_LENGTH") or None
        return upload_session_append(
            session=session,
            offset=offset,
            body=request.stream,
            declared_length=(
                parse_size(declared, header="Content-Length") if declared else None
            ),
            checksum=parse_checksum(request.headers.get("Upload-Checksum")),
        )


class TusCreateView(TusView):
    def post(self, request: Request) -> Response:
        metadata = parse_metadata(request.headers.get("Upload-Metadata"))
        visibility = metadata.get("visibility") or Visibility.PRIVATE
        if visibility not in Visibility.values:
            raise InvalidUploadHeader(
                "visibility is public, unlisted or private.",
                details={"header": "Upload-Metadata", "key": "visibility"},
            )
        session = upload_session_create(
            owner=request.user,
            length=parse_size(
                request.headers.get("Upload-Length"), header="Upload-Length"
            ),
            filename=metadata.get("filename") or metadata.get("name") or "",
            title=(metadata.get("title") or "").strip()[:200],
            visibility=visibility,
        )
        headers = {
            "Location": request.build_absolute_uri(
                reverse("uploads:tus-upload", args=[session.pk])
            ),
            "Upload-Expires": http_date(session.expires_at.timestamp()),
        }
        # creation-with-upload: the first chunk may come with the POST.
        if request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
            session = self.append(request, session, offset=0)
            headers.update(_offset_headers(session))
        return Response(status=201, headers=headers)


class TusUploadView(TusView):
    def get_session(self, request: Request, upload_id: str) -> UploadSession:
        return selectors.upload_session_get_owned(
            user=request.user, upload_id=upload_id
        )

    def head(self, request: Request, upload_id: str) -> Response:
        session = self.get_session(request, upload_id)
        upload_session_refuse_expired(session)
        return Response(
            status=200,
            headers={"Upload-Length": str(session.length), **_offset_headers(session)},
        )

    def patch(self, request: Request, upload_id: str) -> Response:
        session = self.append(request, self.get_session(request, upload_id))
        return Response(status=204, headers=_offset_headers(session))

    def delete(self, request: Request, upload_id: str) -> Response:
        upload_session_terminate(session=self.get_session(request, upload_id))
        return Response(status=204)


@extend_schema(exclude=True)  # the protocol of Uppy's @uppy/aws-s3 plugin
class S3MultipartView(APIView):
    """S3 multipart uploads straight to the bucket, as Uppy's aws-s3 plugin
    asks for them (its `companionEndpoint` option set to /api/v1/uploads)."""

    renderer_classes = [JSONRenderer]

    def get_session(self, request: Request, upload_id: str) -> UploadSession:
        return selectors.upload_session_get_multipart(
            user=request.user, upload_id=upload_id, key=request.query_params.get("key")
        )


class S3MultipartCreateView(S3MultipartView):
    def post(self, request: Request) -> Response:
        data = S3MultipartCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = s3_multipart_start(owner=request.user, **data.validated_data)
        return Response(
            {
                "uploadId": session.s3_upload_id,
                "key": session.s3_key,
                "upload": session.pk,
            }
        )


class S3MultipartUploadView(S3MultipartView):
    def get(self, request: Request, upload_id: str) -> Response:
        return Response(
            s3_multipart_parts(session=self.get_session(request, upload_id))
        )

    def delete(self, request: Request, upload_id: str) -> Response:
        upload_session_terminate(session=self.get_session(request, upload_id))
        return Response({})


class S3MultipartPartView(S3MultipartView):
    def get(self, request: Request, upload_id: str, part_number: int) -> Response:
        url, expires = s3_multipart_sign_part(
            session=self.get_session(request, upload_id), part_number=part_number
        )
        return Response({"url": url, "expires": int(expires.timestamp())})


class S3MultipartCompleteView(S3MultipartView):
    def post(self, request: Request, upload_id: str) -> Response:
        session = s3_multipart_complete(
            session=self.get_session(request, upload_id),
            parts=request.data.get("parts") if isinstance(request.data, dict) else None,
        )
        location = request.build_absolute_uri(
            reverse("uploads:detail", args=[session.pk])
        )
        return Response({"location": location, "upload": session.pk})
