"""Configuration rules: validate raw settings and derive the effective ones."""

from __future__ import annotations

from dataclasses import dataclass, field

ENVIRONMENTS = ("development", "staging", "production")
STORAGE_BACKENDS = ("local", "s3")


@dataclass(frozen=True)
class Problem:
    """One violated rule; `id` is the stable system-check ID."""

    id: str
    variable: str
    message: str
    fix: str
    # Some rules cannot fall back safely in any environment.
    fatal_everywhere: bool = False

    def text(self) -> str:
        return f"{self.variable}: {self.message}"


@dataclass(frozen=True)
class RawConfig:
    veza_env: str
    debug: bool
    allowed_hosts: list[str]
    secret_key: str
    track_storage_backend: str
    s3_enabled: bool
    s3_bucket: str
    s3_access_key: str
    s3_secret_key: str


@dataclass(frozen=True)
class ResolvedConfig:
    track_storage_backend: str
    problems: list[Problem] = field(default_factory=list)


def resolve(raw: RawConfig) -> ResolvedConfig:
    """Check every rule; outside production, fall back where a rule failed."""
    problems: list[Problem] = []
    if raw.veza_env not in ENVIRONMENTS:
        problems.append(
            Problem(
                id="veza.E001",
                variable="VEZA_ENV",
                message=f"{raw.veza_env!r} is not a known environment.",
                fix="Set VEZA_ENV to development, staging or production.",
                fatal_everywhere=True,
            )
        )
    production = raw.veza_env == "production"

    backend = raw.track_storage_backend
    if backend not in STORAGE_BACKENDS:
        problems.append(
            Problem(
                id="veza.E002",
                variable="TRACK_STORAGE_BACKEND",
                message=f"{backend!r} is not a storage backend.",
                fix="Set TRACK_STORAGE_BACKEND to exactly 'local' or 's3' "
                "(lower case, no spaces).",
            )
        )
        backend = "local"
    elif backend == "s3" and not raw.s3_enabled:
        problems.append(
            Problem(
                id="veza.E003",
                variable="AWS_S3_ENABLED",
                message="TRACK_STORAGE_BACKEND is 's3' but S3 is not enabled.",
                fix="Set AWS_S3_ENABLED=true and configure the bucket, or set "
                "TRACK_STORAGE_BACKEND=local.",
            )
        )
        backend = "local"
    if raw.s3_enabled or raw.track_storage_backend == "s3":
        missing = [
            name
            for name, value in (
                ("AWS_STORAGE_BUCKET_NAME", raw.s3_bucket),
                ("AWS_ACCESS_KEY_ID", raw.s3_access_key),
                ("AWS_SECRET_ACCESS_KEY", raw.s3_secret_key),
            )
            if not value
        ]
        if missing:
            problems.append(
                Problem(
                    id="veza.E004",
                    variable=", ".join(missing),
                    message="S3 is enabled but not configured.",
                    fix="Set the bucket name and the access key pair, or turn "
                    "S3 off with AWS_S3_ENABLED=false.",
                )
            )
            backend = "local"

    if production:
        if raw.debug:
            problems.append(
                Problem(
                    id="veza.E005",
                    variable="DJANGO_DEBUG",
                    message="DEBUG is on in production.",
                    fix="Set DJANGO_DEBUG=false.",
                )
            )
        if not raw.allowed_hosts:
            problems.append(
                Problem(
                    id="veza.E006",
                    variable="DJANGO_ALLOWED_HOSTS",
                    message="ALLOWED_HOSTS is empty in production.",
                    fix="Set DJANGO_ALLOWED_HOSTS to the comma-separated host "
                    "names the site answers on.",
                )
            )
        if len(raw.secret_key) < 32:
            problems.append(
                Problem(
                    id="veza.E007",
                    variable="DJANGO_SECRET_KEY",
                    message="SECRET_KEY is missing or shorter than 32 characters.",
                    fix="Set DJANGO_SECRET_KEY to a long random value, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`.",
                )
            )
    return ResolvedConfig(track_storage_backend=backend, problems=problems)


def is_fatal(problem: Problem, *, veza_env: str) -> bool:
    """Production stops on every problem; elsewhere only on the unsafe ones."""
    return problem.fatal_everywhere or veza_env == "production"
