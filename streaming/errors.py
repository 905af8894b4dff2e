"""Errors of the streaming app, each with a stable code."""

from veza.errors import NotFound


class HlsFileNotFound(NotFound):
    code = "hls_file_not_found"
    default_message = "No such file in a ready HLS package."
