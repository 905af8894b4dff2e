"""Fail when a migration has an automatic name (`0003_auto_...`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    bad = [
        p.relative_to(ROOT).as_posix()
        for p in sorted(ROOT.glob("*/migrations/[0-9]*.py"))
        if re.search(r"_auto_\d|^\d{4}_auto", p.stem)
    ]
    for path in bad:
        sys.stderr.write(f"auto-named migration: {path} (use makemigrations --name)\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
