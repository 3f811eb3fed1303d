"""How a benchmark hands out its figures: printed as JSON, and written where ``--json`` says."""

from __future__ import annotations

import json
from pathlib import Path


def publish(figures: dict, path: Path | None) -> int:
    """Print ``figures`` as indented JSON and write the same text to ``path`` if given."""
    text = json.dumps(figures, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n", encoding="utf-8")
    return 0
