"""`demixgan data info` and `demixgan data show`: what data is where, what mixtures look like."""

from __future__ import annotations

import argparse

from demixgan.data.catalog import SPLITS


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect datasets, signal families and mixture recipes")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = actions.add_parser(
        "info", help="list sources (where found, counts, checksums), families, recipes"
    )
    info.add_argument("--data-dir", help="directory holding IDX files (searched first)")
    info.set_defaults(run=run_info)

    show = actions.add_parser(
        "show", help="save an image grid of a recipe's components and mixtures"
    )
    show.add_argument("recipe", help="mixture recipe, e.g. digit+sines (see 'demixgan data info')")
    show.add_argument("--level", type=int, help="level of the signal family component (default 1)")
    show.add_argument("-n", type=int, default=64, help="number of mixtures to show (default 64)")
    show.add_argument("--split", choices=SPLITS, default="train")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument(
        "--digit-source", default="mnist-embedded", help="mnist-embedded (default) or mnist"
    )
    show.add_argument("--clip", action="store_true", help="clamp mixtures to [0, 1]")
    show.add_argument("--data-dir", help="directory holding IDX files (searched first)")
    show.add_argument("-o", "--output", required=True, help="PNG file to write")
    show.set_defaults(run=run_show)


def run_info(args: argparse.Namespace) -> int:
    from demixgan.data.descriptions import FAMILY_DESCRIPTIONS, MAX_LEVEL, MIN_LEVEL, RECIPES
    from demixgan.data.sources import describe_sources

    print("Image sources")
    rows = [("source", "split", "images", "checksum", "location")]
    for entry in describe_sources(args.data_dir):
        rows.append(
            (
                entry["source"],
                entry["split"],
                str(entry.get("count") or "-"),
                entry["checksum"],
                str(entry.get("path") or "not found"),
            )
        )
    _print_table(rows)
    print(f"\nSignal families (levels {MIN_LEVEL}..{MAX_LEVEL})")
    _print_table([("family", "description"), *FAMILY_DESCRIPTIONS.items()])
    print("\nMixture recipes")
    _print_table(
        [("recipe", "components", "what")]
        + [
            (r.name, " + ".join(c.name for c in r.components), r.description)
            for r in RECIPES.values()
        ]
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from demixgan.errors import DemixganError
    from demixgan.inference.options import MAX_SEED
    from demixgan.io.atomic import check_writable_dir
    from demixgan.io.locks import output_lock

    if not 1 <= args.n <= 1024:
        raise DemixganError(f"-n must be between 1 and 1024 mixtures, got {args.n}.")
    if not 0 <= args.seed <= MAX_SEED:
        raise DemixganError(f"--seed must be from 0 to {MAX_SEED}, got {args.seed}.")
    if not args.output.lower().endswith(".png"):
        raise DemixganError(f"The output '{args.output}' must be a .png file.")
    check_writable_dir(Path(args.output).resolve().parent)
    with output_lock(args.output, "image", file=True):
        return _show(args)


def _show(args: argparse.Namespace) -> int:
    from demixgan.data.superposition import build_sampler, make_mixtures
    from demixgan.reports.grids import save_panels

    sampler = build_sampler(
        args.recipe,
        level=args.level,
        split=args.split,
        digit_source=args.digit_source,
        clip=args.clip,
        data_dir=args.data_dir,
    )
    batch = make_mixtures(sampler, args.n, args.seed)
    level = f", level {sampler.level}" if sampler.level is not None else ""
    panels = [(name, batch.components[:, k]) for k, name in enumerate(sampler.names)]
    panels.append(("mixture y = " + " + ".join(sampler.names), batch.mixtures))
    save_panels(
        panels,
        args.output,
        title=f"{sampler.recipe.name} ({args.split} split{level}, seed {args.seed})",
    )
    print(f"wrote {args.output}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
