"""The layout the architecture page promises (docs/architecture.md), checked on the source:
inference never imports training, the paper's image size lives in the image spec alone, and
no two config files share a name."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "demixgan"
#: Where the paper's 1 x 28 x 28 may be written: the image spec's own defaults.
SIZE_HOME = SRC / "spec" / "image.py"


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_inference_imports_nothing_from_training():
    offenders = {
        str(path.relative_to(SRC)): sorted(m for m in _imports(path) if "training" in m)
        for path in (SRC / "inference").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_no_bare_mnist_size_in_code():
    """No number 28 or 784 in code (docstrings and comments may speak of MNIST's size)."""
    found = []
    for path in SRC.rglob("*.py"):
        if path == SIZE_HOME:
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        found += [
            f"{path.relative_to(SRC)}:{token.start[0]}"
            for token in tokens
            if token.type == tokenize.NUMBER and token.string in ("28", "784", "28.0")
        ]
    assert not found, found


def test_configs_have_no_same_named_twins():
    """One name, one config: the repository's configs and the experiments' assets differ in name."""
    repo_configs = {p.name for p in (SRC.parents[1] / "configs").glob("*.toml")}
    assets = {p.name for p in (SRC / "assets" / "experiments").glob("*.toml")}
    assert not repo_configs & assets
