"""Put the model a GAN-budget grid chose into the checkpoint store, so reports reuse it.

Run: ``.venv/bin/python tools/adopt_budget_run.py OUT NAME [--checkpoints runs/checkpoints]
[--profile cpu]``, with OUT a ``benchmarks/gan_budget.py --out`` directory and NAME the
experiment config (``assets/experiments/NAME.toml``) whose ``max_steps`` is now the chosen
budget. The grid's run kept a checkpoint at that step, and ``OUT/sep-STEP`` its separator with
the default options: ``experiments/context.adopt_run`` stores both where ``demixgan reproduce``
looks for that config's model under the profile (``<NAME>-<hash>``, ``separator/`` beside it),
and the report's provenance says they were kept by a grid. A denoiser's grid trains its
separators with ``--max-level``, as the reports do; any separator trained with other options
than the profile's is left out (the report trains its own). Nothing is trained here.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from demixgan.errors import DemixganError
from demixgan.experiments.context import Context, adopt_run
from demixgan.experiments.profiles import PROFILES
from demixgan.inference.api import load
from demixgan.io.checkpoints import list_checkpoints
from demixgan.training.separator_runs import read_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the gan_budget.py --out directory")
    parser.add_argument("name", help="the experiment config, e.g. demix-digit-ink-lines")
    parser.add_argument("--checkpoints", type=Path, default=Path("runs/checkpoints"))
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    args = parser.parse_args()
    context = Context(PROFILES[args.profile], Path("."), args.checkpoints, progress=False)
    try:
        config = context.config(args.name)
        steps = config.train.max_steps
        kept = {c.step: c.weights_path for c in list_checkpoints(args.out / "run" / "checkpoints")}
        separator: Path | None = args.out / f"sep-{steps}"
        if not separator.is_dir() or steps not in kept:
            separator = None
        elif read_job(separator)["options"] != asdict(context.separator_options(load(kept[steps]))):
            print(f"{separator}: trained with other options than the profile's; left out")
            separator = None
        stored = adopt_run(args.checkpoints, config, args.out / "run", separator)
    except DemixganError as error:
        parser.error(str(error))
    print(f"{args.name}: step {steps} stored as {stored.name}, separator: {separator or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
