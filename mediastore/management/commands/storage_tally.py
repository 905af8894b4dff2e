"""Show the storage tallies (what is stored where), or rebuild them from the tables."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mediastore.tally import registered_kinds, tally_read, tally_recount


class Command(BaseCommand):
    help = (
        "Print rows, files and bytes per kind and backend from the storage "
        "tallies; --recount counts them from the tables again (after bulk "
        "changes made outside the app)."
    )
    requires_system_checks = ["veza"]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recount", action="store_true", help="count from the tables"
        )
        parser.add_argument("--json", action="store_true", help="JSON on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["recount"]:
            tallies = tally_recount()
        else:
            tallies = {kind: tally_read(kind=kind) for kind in registered_kinds()}
        if options["json"]:
            data = {
                kind: {backend: asdict(t) for backend, t in by_backend.items()}
                for kind, by_backend in tallies.items()
            }
            self.stdout.write(json.dumps(data, indent=2))
            return
        for kind, by_backend in tallies.items():
            for backend, t in by_backend.items():
                self.stdout.write(
                    f"{kind:10} {backend:6} {t.rows:>12} rows {t.files:>12} files "
                    f"{t.bytes / 1e9:>12.3f} GB"
                )
