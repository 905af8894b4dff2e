#!/usr/bin/env bash
# Start the embedded-defaults system: daphne (HTTP + websockets) and one task
# worker, stopping both together on Ctrl-C. Called by `make run`.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-8000}
bin=.venv/bin

"$bin/python" manage.py db_worker &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT INT TERM

echo "Veza on http://$host:$port/  (API /api/v1/, admin /admin/, docs /api/docs/)"
# daphne, refusing bodies above the upload limit before reading them
# (veza/daphne_server.py); its access log goes to stdout, and the filter
# redacts signed URLs' tokens.
PYTHONUNBUFFERED=1 "$bin/python" -m veza.daphne_server -b "$host" -p "$port" veza.asgi:application \
  | "$bin/python" -u -m veza.log_redaction
