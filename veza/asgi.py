"""ASGI entry point: HTTP to Django, websockets to Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "veza.settings.base")
# Django must be set up before anything imports models (routing, consumers).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import URLPattern, URLResolver  # noqa: E402

from veza.websocket_origin import SameOriginValidator  # noqa: E402
from webrtc.routing import websocket_urlpatterns as call_urlpatterns  # noqa: E402

websocket_urlpatterns: list[URLPattern | URLResolver] = [*call_urlpatterns]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
