"""Errors of the tracks app, each with a stable code."""

from veza.errors import DomainError, Forbidden, PayloadTooLarge, UnsupportedMedia


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


class StorageQuotaExceeded(PayloadTooLarge):
    code = "storage_quota_exceeded"
    default_message = "The upload would take you over your storage quota."


class DailyUploadLimit(DomainError):
    """A daily limit reached; `code` says which, Retry-After when it resets."""

    status_code = 429
    code = "daily_upload_limit"
    default_message = "You have reached today's upload limit; try again tomorrow."
