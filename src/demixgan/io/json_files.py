"""JSON that users and accidents hand back to demixgan (configs, job files, names, logs).

``json.loads`` raises four unrelated exception types on damaged text (a decode error, bad
UTF-8, RecursionError for 100,000 nested brackets, ValueError for a 5,000-digit integer);
here every one of them becomes the same one-paragraph DemixganError naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from demixgan.errors import DemixganError
from demixgan.spec.validation import nesting_depth

#: demixgan writes a few kilobytes into each of these files and nests them a few levels.
MAX_BYTES = 16 << 20
MAX_DEPTH = 32


def json_problem(raw: bytes | str, max_depth: int = MAX_DEPTH) -> tuple[Any, str | None]:
    """``(data, None)`` for sound JSON, else ``(None, what is wrong with it)``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text)
    except UnicodeDecodeError:
        return None, "it is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, exc.msg
    except RecursionError:
        return None, "it nests arrays or objects too deeply to parse"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return None, str(exc)
    if nesting_depth(data, max_depth) > max_depth:
        return None, f"it nests arrays or objects more than {max_depth} levels deep"
    return data, None


def read_json(path: str | os.PathLike, what: str, advice: str) -> Any:
    """The JSON content of ``path`` (a regular file of at most ``MAX_BYTES``), or one
    DemixganError: "The {what} '{path}' ... {advice}"."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DemixganError(
            f"Cannot read the {what} '{path}': {exc.strerror or exc}. {advice}"
        ) from None
    problem = f"it is larger than {MAX_BYTES >> 20} MiB" if len(raw) > MAX_BYTES else None
    data, problem = (None, problem) if problem else json_problem(raw)
    if problem is not None:
        raise DemixganError(
            f"The {what} '{path}' is not valid JSON ({problem}): it is truncated, damaged or "
            f"was edited by hand. {advice}"
        )
    return data
