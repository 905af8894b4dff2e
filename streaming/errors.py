"""Errors of the streaming app, each with a stable code."""

from veza.errors import Conflict, NotFound


class HlsFileNotFound(NotFound):
    code = "hls_file_not_found"
    default_message = "No such file in a ready HLS package."


class WaveformNotReady(Conflict):
    code = "waveform_not_ready"
    default_message = (
        "The track's waveform is made when it is packaged for streaming; "
        "try again once its HLS package is ready."
    )
