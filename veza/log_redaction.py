"""Secrets out of logs: the tokens signed URLs carry, redacted in every log line."""

# A stream, download or HLS URL is a bearer credential for an hour; access
# logs (daphne's, gunicorn's, nginx's) and Django's own "Not Found: <path>"
# lines would otherwise keep working copies. One `redact` serves the logging
# filter (LOGGING), gunicorn's logger class (infra/gunicorn.conf.py) and a
# line filter for daphne's access log (`python -m veza.log_redaction`, used by
# infra/run-dev.sh); infra/nginx/veza.conf applies the same patterns.

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from gunicorn import glogging

REDACTED = "[redacted]"
# /origin/hls/<expires>/<token>/...: the token is a path segment.
_HLS_PATH = re.compile(r"(/origin/hls/[0-9]+/)[^/\s?\"]+")
# ?token= (origin URLs), ?ticket= (websocket tickets), presigned signatures.
_QUERY = re.compile(
    r"([?&](?:token|ticket|signature|x-amz-signature|x-amz-credential)=)[^&\s\"]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _QUERY.sub(r"\1" + REDACTED, _HLS_PATH.sub(r"\1" + REDACTED, text))


class RedactSecrets(logging.Filter):
    """A handler filter: the record's message, with `redact` applied."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # the handler reports a malformed call itself
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingGunicornLogger(glogging.Logger):
    """gunicorn's logger with every access-log atom (request line, path,
    query, referer, headers) redacted."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: redact(value) if isinstance(value, str) else value
            for key, value in atoms.items()
        }


def main() -> None:
    """Copy stdin to stdout, line by line, redacted (daphne's access log)."""
    for line in sys.stdin:
        sys.stdout.write(redact(line))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
