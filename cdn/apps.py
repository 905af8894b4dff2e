"""The cdn app: signed CDN URLs and cache-header helpers."""

from django.apps import AppConfig


class CdnConfig(AppConfig):
    name = "cdn"
    verbose_name = "CDN"
