"""Errors of the tracks app, each with a stable code."""

from typing import ClassVar

from veza.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMedia,
)


class UploadMissing(DomainError):
    code = "file_required"
    default_message = "Send the audio file in the multipart field 'file'."


class EmptyUpload(DomainError):
    code = "empty_file"
    default_message = "The uploaded file is empty."


class NotAudio(UnsupportedMedia):
    code = "not_audio"
    default_message = "The file is not a supported audio format."


class Undecodable(UnsupportedMedia):
    code = "undecodable_audio"
    default_message = "The audio in the file cannot be decoded."


class TruncatedAudio(UnsupportedMedia):
    code = "truncated_audio"
    default_message = "The file ends before the audio it declares."


class NoDuration(UnsupportedMedia):
    code = "no_duration"
    default_message = "The audio has no measurable duration."


class TooLong(DomainError):
    status_code = 422
    code = "audio_too_long"
    default_message = "The audio is longer than a track may be."


class InvalidToken(Forbidden):
    code = "invalid_token"
    default_message = "The URL's token is invalid or has expired."


class TrackTakenDown(DomainError):
    status_code = 451
    code = "track_taken_down"
    default_message = "This track has been taken down and cannot be played."


class MigrationFailed(DomainError):
    """A queued storage move that did not move every row: its task fails."""

    status_code = 500
    code = "migration_failed"
    default_message = "The storage migration did not move every track."


class MigrationDatabaseLost(ServiceUnavailable):
    """A storage move whose database stayed unreachable: the run stopped."""

    code = "migration_database_lost"
    default_message = (
        "The database stayed unreachable, so the storage migration stopped. "
        "Rows it held are freed when their leases run out; run it again to finish."
    )


class StorageQuotaExceeded(PayloadTooLarge):
    code = "storage_quota_exceeded"
    default_message = "The upload would take you over your storage quota."


class DailyUploadLimit(DomainError):
    """A daily limit reached; `code` says which, Retry-After when it resets."""

    status_code = 429
    code = "daily_upload_limit"
    default_message = "You have reached today's upload limit; try again tomorrow."


class TusVersionUnsupported(DomainError):
    status_code = 412
    code = "tus_version_unsupported"
    default_message = "Send Tus-Resumable: 1.0.0, the only tus version served."
    default_headers: ClassVar[dict[str, str]] = {"Tus-Version": "1.0.0"}


class InvalidUploadHeader(DomainError):
    code = "invalid_upload_header"
    default_message = "An upload header is missing or malformed."


class UploadNotFound(NotFound):
    code = "upload_not_found"
    default_message = "No upload of yours has this id."


class UploadExpired(DomainError):
    status_code = 410
    code = "upload_expired"
    default_message = "The upload expired; start a new one."


class UploadOffsetMismatch(Conflict):
    code = "upload_offset_mismatch"
    default_message = "Upload-Offset is not the server's offset; HEAD it and resume."


class UploadNotReceiving(Conflict):
    code = "upload_not_receiving"
    default_message = "The upload has all its bytes already."


class UploadBusy(DomainError):
    status_code = 423
    code = "upload_busy"
    default_message = "Another request is writing to this upload; retry."


class UploadLengthExceeded(PayloadTooLarge):
    code = "upload_length_exceeded"
    default_message = "The bytes go past the upload's declared length."


class ChecksumMismatch(DomainError):
    status_code = 460  # tus checksum extension
    code = "checksum_mismatch"
    default_message = "The chunk's checksum does not match; it was not kept."


class TooManyUploads(DomainError):
    status_code = 429
    code = "too_many_uploads"
    default_message = "Finish or cancel an upload in progress first."


class UploadLengthMismatch(Conflict):
    code = "upload_length_mismatch"
    default_message = "The parts do not add up to the upload's declared length."


class InvalidParts(DomainError):
    code = "invalid_parts"
    default_message = 'Send `parts` as [{"PartNumber": 1, "ETag": "..."}, ...].'


class S3UploadsUnavailable(Conflict):
    code = "s3_uploads_unavailable"
    default_message = (
        "Tracks are not stored on S3 here: upload with tus (/api/v1/uploads/tus/)."
    )


class TrackProcessing(Conflict):
    code = "track_processing"
    default_message = "The track is still being processed; try again shortly."


class TrackDeletedWhileProcessing(Conflict):
    code = "track_deleted"
    default_message = "The track was deleted while its upload was processed."
