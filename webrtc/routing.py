"""Websocket URLs of the webrtc app."""

from django.urls import URLPattern, URLResolver, path

from webrtc.consumers import CallConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/calls/", CallConsumer.as_asgi(), name="calls-ws"),
]
