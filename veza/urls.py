"""The project's URL map."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from veza import health
from veza.api_routes import api_unmatched
from veza.auth_views import AuthTokenView, TokenListView
from veza.favicon import favicon
from veza.metrics_access import metrics
from webrtc.api.views import IceConfigView

api_v1: list[URLPattern | URLResolver] = [
    path("auth/token", AuthTokenView.as_view(), name="auth-token"),
    path("auth/tokens", TokenListView.as_view(), name="auth-tokens"),
    path("uploads/", include("tracks.api.upload_urls")),
    path("", include("streaming.api.urls")),
    path("config/webrtc", IceConfigView.as_view(), name="webrtc-config"),
    path("calls/", include("webrtc.api.urls")),
]

# Every request walks this list top down, and each include it enters builds a
# ResolverMatch: the busiest API (tracks and their playback URLs) comes first,
# one include deep instead of two, and past no failed include. The URLs, names
# and namespaces are unchanged; no URL matches two entries, so order is free.
urlpatterns = [
    path("api/v1/tracks/", include("tracks.api.urls")),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"
    ),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", include("tracks.urls")),
    path("", include("webrtc.urls")),
    path("", include("streaming.urls")),
    path("", include("streaming.player_urls")),
    # Last: any other path under /api/ is a route's other slash form or a
    # JSON 404, never Django's HTML page or APPEND_SLASH's redirect.
    re_path(r"^api/", api_unmatched),
]

handler404 = "veza.error_pages.not_found"
handler500 = "veza.error_pages.server_error"
