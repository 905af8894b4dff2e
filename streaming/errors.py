"""Errors of the streaming app, each with a stable code."""

from veza.errors import Conflict


class PackageNotReady(Conflict):
    code = "hls_not_ready"
    default_message = "The track's HLS package is not ready yet."
