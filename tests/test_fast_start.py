"""Fast start: the listing commands answer without importing torch (seconds on a small CPU).

Wall-clock times are not asserted (CI machines are noisy); what keeps the commands fast is that
torch stays unimported, which is exact.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from demixgan.cli.main import main
from demixgan.data.families import FAMILIES, MAX_LEVEL, MIN_LEVEL
from demixgan.data.superposition import RECIPES

PROBE = """
import sys
from demixgan.cli.main import main
try:
    code = main({argv!r})
except SystemExit as exit:  # --help exits once it has printed
    code = exit.code
print("exit", code, "torch imported", "torch" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["data", "info"], ["reproduce", "list"]])
def test_listing_commands_do_not_import_torch(argv):
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exit 0 torch imported False"


def _table(out: str, title: str) -> list[list[str]]:
    """The rows (cells split on runs of 2+ spaces) of the table printed under ``title``."""
    section = next(s for s in out.split("\n\n") if s.startswith(title))
    return [re.split(r"\s{2,}", line) for line in section.splitlines()[2:]]


def test_data_info_lists_every_family_and_recipe_of_the_registries(capsys):
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    families = _table(out, f"Signal families (levels {MIN_LEVEL}..{MAX_LEVEL})")
    assert families == [[f.name, f.description] for f in FAMILIES.values()]
    recipes = _table(out, "Mixture recipes")
    assert recipes == [
        [r.name, " + ".join(c.name for c in r.components), r.description] for r in RECIPES.values()
    ]
