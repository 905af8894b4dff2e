"""The streaming app: HLS packaging and serving (see the HLS issue)."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    verbose_name = "Streaming"
