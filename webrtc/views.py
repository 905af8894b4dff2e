"""The call page and the login page in front of it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy


@login_required(login_url=reverse_lazy("webrtc:login"))
def call_page(request: HttpRequest) -> HttpResponse:
    people = (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(pk=request.user.pk or 0)
        .order_by("username")
        .values("id", "username")[:500]
    )
    return render(
        request, "webrtc/calls.html", {"people": list(people), "me": request.user}
    )


class CallLoginView(LoginView):
    template_name = "webrtc/login.html"

    def get_default_redirect_url(self) -> str:
        return reverse("webrtc:calls")
