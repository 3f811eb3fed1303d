"""How a benchmark hands out its figures: printed as JSON, and written where ``--json`` says."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path


def publish(figures: dict, path: Path | None) -> int:
    """Print ``figures`` as indented JSON and write the same text to ``path`` if given."""
    text = json.dumps(figures, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n", encoding="utf-8")
    return 0


def command_line(**hidden: str) -> str:
    """This benchmark's command as run, each value in ``hidden`` (a machine's path) shown as
    its key instead: what a figures file records, e.g. ``command_line(STORE=args.store)``."""
    shown = {str(value): key for key, value in hidden.items()}
    script = Path(sys.argv[0]).as_posix().split("benchmarks/")[-1]
    return f"python benchmarks/{script} " + shlex.join(shown.get(a, a) for a in sys.argv[1:])
