"""What does mixture consistency add, to the demixing-GAN and to ICA? (docs/inference.md)

Run: ``.venv/bin/python benchmarks/consistency_gain.py [--n 200]``. Separates the demo's
held-out digit + sines mixtures (embedded MNIST test split, level 1) with the shipped checkpoint
and the demo's fit budget, and prints the PSNR of the generator outputs, of the consistent
parts, of ICA and of ICA projected the same way, next to the split y/2.
"""

from __future__ import annotations

import argparse

from demixgan.data.superposition import build_sampler, make_mixtures
from demixgan.evaluation.baselines import ica_demix
from demixgan.evaluation.separation import score_method
from demixgan.experiments.demo import DEMO_FIT, shipped_checkpoint
from demixgan.inference.api import load
from demixgan.inference.consistency import project_onto_mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    trained = load(shipped_checkpoint())
    sampler = build_sampler("digit+sines", level=1, split="test", digit_source="mnist-embedded")
    batch = make_mixtures(sampler, args.n, DEMO_FIT.seed + 1)  # the demo's mixtures
    generated = trained.demix(batch.mixtures, DEMO_FIT, consistent=False)
    ica = ica_demix(batch.mixtures, n_components=2, seed=DEMO_FIT.seed)
    split = batch.mixtures[:, None].expand(-1, 2, -1, -1, -1) / 2
    ica_names = ("ICA 1", "ICA 2")
    for method, parts, names in (
        ("G(z)", generated, trained.component_names),
        (
            "G(z), consistent",
            project_onto_mixture(generated, batch.mixtures),
            trained.component_names,
        ),
        ("ICA", ica, ica_names),
        ("ICA, consistent", project_onto_mixture(ica, batch.mixtures), ica_names),
        ("split y/2", split, ("half", "other half")),
    ):
        row = score_method(method, parts, batch.components, sampler.names, names)
        cells = "  ".join(f"{k} {v['psnr'][0]:.2f} dB" for k, v in row.scores.items())
        print(f"{method:18s} {cells}", flush=True)


if __name__ == "__main__":
    main()
