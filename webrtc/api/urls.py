"""URLs of the calls API, under /api/v1/calls/."""

from django.urls import path

from webrtc.api import views

app_name = "calls-api"

urlpatterns = [
    path("", views.CallListView.as_view(), name="list"),
    path("ticket", views.CallTicketView.as_view(), name="ticket"),
]
