"""Non-API URLs of calls: the call page."""

from django.urls import path

from webrtc import views

app_name = "webrtc"

urlpatterns = [
    path("calls/", views.call_page, name="calls"),
    path("calls/login/", views.CallLoginView.as_view(), name="login"),
]
