"""The webrtc app: ICE configuration and call signaling (see the calls issue)."""

from django.apps import AppConfig


class WebrtcConfig(AppConfig):
    name = "webrtc"
    verbose_name = "WebRTC"
