"""System checks of the cdn app: the django-storages unsigned-URL trap."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


def _unsigned_custom_domains() -> list[str]:
    # django-storages' S3Storage.url() returns a plain unsigned URL when a
    # custom domain is set and no CloudFront signer is configured.
    found = []
    global_signer = bool(
        getattr(settings, "AWS_CLOUDFRONT_KEY", None)
        and getattr(settings, "AWS_CLOUDFRONT_KEY_ID", None)
    )
    if getattr(settings, "AWS_S3_CUSTOM_DOMAIN", None) and not global_signer:
        found.append("AWS_S3_CUSTOM_DOMAIN")
    for alias, storage in getattr(settings, "STORAGES", {}).items():
        if "s3" not in str(storage.get("BACKEND", "")).lower():
            continue
        options = storage.get("OPTIONS", {})
        custom_domain = options.get(
            "custom_domain", getattr(settings, "AWS_S3_CUSTOM_DOMAIN", None)
        )
        signer = options.get("cloudfront_signer", None) or (
            options.get("cloudfront_key") and options.get("cloudfront_key_id")
        )
        if custom_domain and not (signer or global_signer):
            found.append(f"STORAGES[{alias!r}]")
    return found


@register("veza")
def unsigned_custom_domain_check(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    return [
        Warning(
            f"{where}: an S3 custom domain without a CloudFront signer makes "
            "django-storages return unsigned URLs and skip S3 presigning.",
            hint="Sign through cdn.services (CDN_ENABLED=true), set "
            "AWS_CLOUDFRONT_KEY and AWS_CLOUDFRONT_KEY_ID, or remove the custom "
            "domain.",
            id="cdn.W001",
        )
        for where in _unsigned_custom_domains()
    ]
