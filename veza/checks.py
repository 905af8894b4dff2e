"""System checks that report the configuration rules of `veza.config`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from veza import config


@register("veza")
def configuration_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for problem in settings.CONFIG_PROBLEMS:
        if config.is_fatal(problem, veza_env=settings.VEZA_ENV):
            messages.append(Error(problem.text(), hint=problem.fix, id=problem.id))
        else:
            hint = f"{problem.fix} Falling back to a safe default for now."
            messages.append(
                Warning(problem.text(), hint=hint, id=problem.id.replace(".E", ".W"))
            )
    return messages
