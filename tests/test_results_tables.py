"""RESULTS.md's generated tables are what their committed metrics.json files say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_generated_table_of_results_matches_its_metrics_file():
    text = (REPO / "RESULTS.md").read_text(encoding="utf-8")
    markers = text.count("<!-- table from ") + text.count("<!-- margins from ")
    assert markers == text.count("<!-- end table -->") >= 1
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "results_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_typed_number_in_a_generated_table_is_caught(tmp_path):
    text = (REPO / "RESULTS.md").read_text(encoding="utf-8")
    start = text.index("<!-- table from ")
    row = text.index("| demixing-GAN", start)
    typed = text[:row] + text[row:].replace(".", ",", 1)  # one digit group changed
    (tmp_path / "RESULTS.md").write_text(typed, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "results_tables.py"),
            "--check",
            "--file",
            str(tmp_path / "RESULTS.md"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
