"""`demixgan reproduce`: the experiment registry and the report writer, on the smoke budget."""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace

import pytest
import torch

from demixgan.cli.main import main
from demixgan.errors import DemixganError
from demixgan.experiments import compressive, registry
from demixgan.experiments.compressive import SEPARATOR_COLUMN, TUNED_LASSO
from demixgan.experiments.context import MEAN_DIGIT, Context
from demixgan.experiments.denoising import ESTIMATED, GIVEN_ESTIMATE, SEPARATED
from demixgan.experiments.ink import INK_SETTINGS
from demixgan.experiments.profiles import PROFILES
from demixgan.experiments.registry import (
    PAPER_ORDER,
    all_experiments,
    reproduce,
    reproduce_all,
    reproduce_command,
    train_models,
)
from demixgan.inference.choice import METHODS, PEERS, ChoiceBudget
from demixgan.inference.methods import (
    FIT_ROW,
    MIXIT_ORACLE_ROW,
    PEER_ROWS,
    PIXEL_RULE_ROW,
    SEPARATOR_ROW,
)
from demixgan.models.operators import mix
from demixgan.reports.experiment import Header, Outcome, ResultTable, run_record, write_outcome


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    """The checkpoint store of every smoke_run."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_store):
    """name -> the run directory of that experiment on the smoke budget, run once per module.

    All experiments share one store, and each first trains what it declares (--train-only), as
    side-by-side training would: the run itself must then reuse every model.
    """
    store, runs = smoke_store, {}

    def run(name: str):
        if name not in runs:
            options = {"profile": "smoke", "checkpoint_store": store, "progress": False}
            train_models(name, **options)
            runs[name] = reproduce(name, tmp_path_factory.mktemp(name) / "run", **options).parent
        return runs[name]

    return run


def _provenance(run) -> list[str]:
    return json.loads((run / "metrics.json").read_text())["provenance"]


def test_demix_test_writes_tables_figures_metrics_and_reports(smoke_run):
    run = smoke_run("demix-test")
    assert {p.name for p in run.iterdir()} == {
        "tables",
        "figures",
        "metrics.json",
        "report.md",
        "report.html",
    }
    with open(run / "tables" / "table-1.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    methods = {(row["setting"], row["method"]) for row in rows}
    assert ("digit+sines", "demixing-GAN") in methods and ("digit+sines", "split y/2") in methods
    paper = [
        row
        for row in rows
        if row["method"] == "demixing-GAN (paper)" and row["setting"] == "digit+sines"
    ]
    assert paper[0]["part 1 PSNR"] == "13.3" and paper[0]["part 2 PSNR"] == "14.6"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["profile"].startswith("smoke") and metrics["digit+sines"]["n"] == 4
    peers = {SEPARATOR_ROW, MIXIT_ORACLE_ROW, PIXEL_RULE_ROW, *PEER_ROWS.values()}
    dcgans = "digit+sines, the paper's two DCGANs"
    assert peers <= {method for setting, method in methods if setting == "digit+waves"}
    paper_architecture = {method for setting, method in methods if setting == dcgans}
    assert {SEPARATOR_ROW, FIT_ROW, "split y/2"} <= paper_architecture
    assert not paper_architecture & (peers - {SEPARATOR_ROW})  # its peers: the rows above
    with open(run / "tables" / "margins.csv", newline="") as file:  # every peered setting's
        margins = [(row["setting"], row["part"]) for row in csv.DictReader(file)]
    assert margins == [
        (setting, part)
        for setting, strokes in (("digit+sines", "sines"), ("digit+waves", "waves"))
        for part in ("digit", strokes)
    ]
    with open(run / "tables" / "architecture.csv", newline="") as file:
        architectures = list(csv.DictReader(file))
    assert [row["setting"] for row in architectures] == ["digit+sines", dcgans]
    assert [row["peers and bound"] for row in architectures] == ["yes", "no"]
    validation = [metrics[row["setting"]]["validation_psnr"]["separator"] for row in architectures]
    chosen = [row["chosen"] == "chosen" for row in architectures]
    assert chosen == [v == max(validation) for v in validation] and sum(chosen) == 1
    html = (run / "report.html").read_text()
    assert "Table 1" in html and html.count('src="data:image/png;base64,') == 3
    assert "](figures/separation-demix-digit-sines.png)" in (run / "report.md").read_text()


def test_denoise_experiments_share_their_denoisers_and_classifier(smoke_run):
    test = smoke_run("denoise-test")
    with open(test / "tables" / "denoising.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["corruption"], r["level"]) for r in rows] == [
        (family, str(level)) for family in ("lines", "sines", "ink") for level in range(1, 6)
    ]
    metrics = json.loads((test / "metrics.json").read_text())
    assert metrics["digits"] == 3
    for estimate in ("input", "G(z)", GIVEN_ESTIMATE, ESTIMATED, SEPARATED):
        assert len(metrics["ink"][f"accuracy, {estimate}"]) == 5
    assert rows[0][f"accuracy, {ESTIMATED}"].endswith("%")
    # the floor reads no input: the same pixel error at every level of every family
    floor = f"error, {MEAN_DIGIT}"
    floors = {e for family in ("lines", "sines", "ink") for e in metrics[family][floor]}
    assert len(floors) == 1 and floors.pop() > 0
    # each denoiser's separator drew its corruption at every level the estimate tries
    tried = max(PROFILES["smoke"].denoise_tried_levels)
    assert all(metrics[family]["separator"]["max_level"] == tried for family in ("sines", "ink"))
    assert any("denoise-digit-sines" in line and "separator" in line for line in _provenance(test))
    # the level threshold was chosen on validation digits: the best share of levels right there
    choice = metrics["lines"]["level_threshold"]
    shares = {float(t): share for t, share in choice["validation_share_right"].items()}
    assert choice["chosen"] == max(shares, key=shares.get)
    assert len(metrics["lines"]["level estimated right"]) == 5
    assert {p.name for p in (test / "figures").iterdir()} >= {
        "accuracy-lines.png",
        "error-sines.png",
    }

    train = smoke_run("denoise-train")
    stored = [line.split(" reused ")[1].split(" (")[0] for line in _provenance(train)]
    assert len(stored) == 4 and all(path in " ".join(_provenance(test)) for path in stored)
    assert (train / "figures" / "evolution-lines-epoch-0001.png").is_file()


def test_cs_scores_tuned_lasso_the_mean_digit_and_every_prior_at_every_m(smoke_run):
    run = smoke_run("cs")
    with open(run / "tables" / "cs.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["waves"], r["m"]) for r in rows] == [
        ("2", "10"),
        ("2", "20"),
        ("4", "10"),
        ("4", "20"),
    ]
    for row in rows:
        columns = (TUNED_LASSO, MEAN_DIGIT, "vanilla GAN", "denoising-GAN", "demixing-GAN")
        assert all(0 < float(row[k]) < 1 for k in columns)
    metrics = json.loads((run / "metrics.json").read_text())
    # alpha chosen on validation digits for each (level, m): the grid's best there
    for key, choice in metrics["lasso_alphas"].items():
        errors = {float(a): e for a, e in choice["errors"].items()}
        assert choice["alpha"] == min(errors, key=errors.get), key
    # vanilla (one model for both wave counts), denoising and demixing GAN at 2 and 4 waves;
    # the 2-wave demixing prior's separator of whole mixtures teaches the one of measurements:
    # both stored beside it by --train-only, and reused by the report
    provenance = _provenance(run)
    assert len(provenance) == 7
    stored = {line.split(": ")[0]: line.split(": ")[1] for line in provenance}
    measured = [model for model in stored if "separator of 20 measurements" in model]
    assert len(measured) == 1, stored
    for separator in ("demix-digit-waves2 separator", *measured):
        assert stored[separator].startswith("reused (trained earlier")
    # the profile's separator m (smoke: 20) under 2 waves, beside the same fit and LASSO
    with open(run / "tables" / "cs-separator.csv", newline="") as file:
        (one_pass,) = csv.DictReader(file)
    assert (one_pass["waves"], one_pass["m"]) == ("2", "20")
    assert one_pass[TUNED_LASSO] == rows[1][TUNED_LASSO]
    assert one_pass[MEAN_DIGIT] == rows[1][MEAN_DIGIT]
    assert one_pass["demixing-GAN (latent fit)"] == rows[1]["demixing-GAN"]
    separator = metrics["separator"]
    assert 0 < separator["error"] < 1 and separator["options"]["steps"] == 2
    best_floor = min(separator["LASSO"], separator["mean digit"])
    assert one_pass["best floor / separator"] == f"{best_floor / separator['error']:.2f}x"
    # both means and SSIM at that m, for every method, the separator included; the PSNR of
    # the mean MSE is the error table's number in dB
    with open(run / "tables" / "cs-means.csv", newline="") as file:
        means = list(csv.DictReader(file))
    methods = (MEAN_DIGIT, TUNED_LASSO, "vanilla GAN", "denoising-GAN", "demixing-GAN")
    assert [(r["waves"], r["method"]) for r in means] == [
        *(("2", name) for name in (*methods, SEPARATOR_COLUMN)),
        *(("4", name) for name in methods),
    ]
    for row in means:
        errors = metrics[f"waves-{row['waves']}"]
        error = errors[row["method"]][1] if row["method"] in errors else separator["error"]
        assert abs(float(row["PSNR of the mean MSE"]) - 10 * math.log10(1 / error)) < 1e-2


def test_cs_measures_the_same_test_parts_at_every_m(smoke_run, smoke_store, tmp_path, monkeypatch):
    """Every m measures the test digits and waves themselves (an estimate once took their
    place after the first m, and every later score measured the wrong image). A second run of
    cs, on the models the first stored."""
    smoke_run("cs")
    measured = []

    def recording_mix(parts, operator):
        measured.append((parts.clone(), operator.matrix.shape[0]))
        return mix(parts, operator)

    monkeypatch.setattr(compressive, "mix", recording_mix)
    options = {"profile": "smoke", "checkpoint_store": smoke_store, "progress": False}
    reproduce("cs", tmp_path / "run", **options)
    by_m: dict[int, list[torch.Tensor]] = {}
    for parts, m in measured:
        by_m.setdefault(m, []).append(parts)
    first, *others = by_m.values()
    for later in others:  # the same test and validation parts at every m, in the same order
        assert len(later) == len(first)
        assert all(torch.equal(a, b) for a, b in zip(first, later, strict=True))


def test_each_candidate_separator_of_measurements_has_its_own_provenance(tmp_path):
    """Candidates of one model's separator of measurements (benchmarks/cs_choices.py trains
    several) each name their own budget: one line per model once kept only the first."""
    profile = PROFILES["smoke"]
    context = Context(profile, tmp_path / "run", tmp_path / "store", progress=False)
    trained = context.trained(context.config("demix-digit-waves2"))
    for remix_steps in (2, 3):
        options = replace(profile.cs_separator, remix_steps=remix_steps)
        context.measured_separator(trained, options, profile.cs_separator_measurements)
    measured = [line for line in context.provenance if "measurements" in line]
    assert [("2 + 2 steps" in line, "2 + 3 steps" in line) for line in measured] == [
        (True, False),
        (False, True),
    ]


def test_a_failing_experiment_leaves_no_output(tmp_path, monkeypatch):
    def broken(context):
        (context.run_dir / "half.txt").write_text("half")
        raise DemixganError("the data ran out")

    monkeypatch.setitem(
        registry.EXPERIMENTS, "broken", registry.Experiment("broken", "t", "p", broken)
    )
    with pytest.raises(DemixganError, match="ran out"):
        reproduce("broken", tmp_path / "out", profile="smoke", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_reproduce_all_writes_an_index_linking_every_report(tmp_path, monkeypatch):
    def tiny(context):
        return Outcome("a tiny experiment", [ResultTable("t", "T", ["a"], [["1"]])])

    monkeypatch.setattr(
        registry, "EXPERIMENTS", {"one": registry.Experiment("one", "first", "Fig. 1", tiny)}
    )
    monkeypatch.setattr(registry, "_load_experiments", lambda: None)
    index = reproduce_all(tmp_path / "all", profile="smoke", progress=False)
    assert '<a href="one/report.html">one: first</a>' in index.read_text()
    assert (tmp_path / "all" / "one" / "tables" / "t.csv").read_text() == "a\n1\n"


def test_every_registered_experiment_names_its_paper_figure():
    experiments = all_experiments()
    assert "demix-test" in [e.name for e in experiments]
    assert all(e.paper and e.title for e in experiments)


def test_tables_keep_commas_and_quotes_in_csv(tmp_path):
    table = ResultTable("t", "T", ["method", "value"], [['ICA, "patches"', "1.5"]])
    record = run_record("demixgan reproduce x")
    header = Header("x", "Fig. 1", record, "smoke", ["m: trained now"], 0.1)
    write_outcome(tmp_path, header, Outcome("s", [table]))
    with open(tmp_path / "tables" / "t.csv", newline="") as file:
        assert list(csv.reader(file)) == [["method", "value"], ['ICA, "patches"', "1.5"]]
    assert '| ICA, "patches" | 1.5 |' in (tmp_path / "tables" / "t.md").read_text()
    html = (tmp_path / "report.html").read_text()  # words align left, numbers right
    assert "<td>ICA, &quot;patches&quot;</td>" in html and '<td class="n">1.5</td>' in html


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "demix-tset"], "Unknown experiment 'demix-tset'"),
        (["reproduce", "demix-test", "--profile", "gpu"], "Unknown profile 'gpu'"),
    ],
)
def test_bad_names_are_clear_errors(argv, message, capsys, tmp_path):
    assert main([*argv, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_experiment_config_loads_under_every_profile():
    from pathlib import Path

    from demixgan.experiments.demo import asset
    from demixgan.spec.config import load_config

    configs = sorted(Path(asset("experiments")).glob("*.toml"))
    assert len(configs) >= 4
    for config in configs:
        for profile in PROFILES.values():
            assert load_config(config, list(profile.train_overrides)).name == config.stem


def test_every_experiment_of_the_paper_is_registered():
    order = registry.PAPER_ORDER + registry.BEYOND_PAPER
    assert [e.name for e in all_experiments()] == list(order)


def test_demix_train_shows_evolution_and_scores_gains_over_the_split(smoke_run):
    run = smoke_run("demix-train")
    figures = {p.name for p in (run / "figures").iterdir()}
    for label in ("digit-sines", "digit-lines", "digit-digit", "digits-1-2"):
        assert f"evolution-{label}-epoch-0001.png" in figures
    with open(run / "tables" / "gain-over-split.csv", newline="") as file:
        gains = {row["setting"]: row for row in csv.DictReader(file)}
    amortized = "digit+digit (amortized separator)"  # every setting trains a separator
    dcgans = "digit+lines, the paper's two DCGANs"
    assert set(gains) == {
        f"{setting}{suffix}"
        for setting in ("digit+lines", dcgans, "digit+digit", "digits-1-2")
        for suffix in ("", " (amortized separator)")
    }
    metrics = json.loads((run / "metrics.json").read_text())
    digits = metrics["digit+digit"]
    separator = digits["scores"]["demixing-GAN, amortized separator"]["digit-a"]["psnr"][0]
    assert float(gains[amortized]["part 1"]) == pytest.approx(
        separator - digits["scores"]["split y/2"]["digit-a"]["psnr"][0], abs=0.006
    )
    assert digits["separator"]["steps"] == 2 and "separator" in metrics["digit+lines"]
    assert PEER_ROWS["supervised"] in metrics["digits-1-2"]["scores"]
    assert digits["matching"]["demixing-GAN"] == {"digit-a": "best per mixture"} | {
        "digit-b": "best per mixture"
    }
    psnr = digits["scores"]["demixing-GAN"]["digit-a"]["psnr"][0]
    split = digits["scores"]["split y/2"]["digit-a"]["psnr"][0]
    assert float(gains["digit+digit"]["part 1"]) == pytest.approx(psnr - split, abs=0.006)
    with open(run / "tables" / "separation.csv", newline="") as file:
        paper = [row for row in csv.DictReader(file) if row["method"].endswith("(paper)")]
    assert [(r["setting"], r["part 1 PSNR"], r["part 2 PSNR"]) for r in paper] == [
        ("digits-1-2", "12.5", "12.9")
    ]


def test_demix_ink_scores_peers_and_the_bound_beside_the_floors(smoke_run):
    run = smoke_run("demix-ink")
    with open(run / "tables" / "separation.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    methods = {}
    for row in rows:
        methods.setdefault(row["setting"], set()).add(row["method"])
    peers = {SEPARATOR_ROW, MIXIT_ORACLE_ROW, PIXEL_RULE_ROW, "split y/2", *PEER_ROWS.values()}
    in_distribution, ood, lines, grey, dcgan = (setting.label for setting in INK_SETTINGS)
    assert peers <= methods[in_distribution] and FIT_ROW in methods[in_distribution]
    assert peers <= methods[ood] and peers <= methods[grey] and FIT_ROW not in methods[ood]
    assert peers <= methods[lines]
    assert methods[dcgan] == {SEPARATOR_ROW, FIT_ROW, "split y/2"}
    assert all(" ± " in row["part 1 PSNR"] and row["part 2 SSIM"] != "–" for row in rows)

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics[ood]["recipe"] == "digit+ink-ood" and metrics[grey]["recipe"] == "digit+ink"
    assert metrics[grey]["separator"] == asdict(PROFILES["smoke"].separator)
    with open(run / "tables" / "margins.csv", newline="") as file:
        margins = list(csv.DictReader(file))
    assert [(row["setting"], row["part"]) for row in margins] == [
        (label, part)
        for label, strokes in (
            (in_distribution, "ink"),
            (ood, "ink"),
            (lines, "ink-lines"),
            (grey, "ink"),
        )
        for part in ("digit", strokes)
    ]
    first = metrics[in_distribution]["scores"]
    ours = first[SEPARATOR_ROW]["digit"]["psnr"][0]
    bound = first[PEER_ROWS["supervised"]]["digit"]["psnr"][0]
    assert float(margins[0]["below it"]) == pytest.approx(bound - ours, abs=0.006)
    assert all(row["targets"] == "met" or row["targets"].startswith("missed: ") for row in margins)
    with open(run / "tables" / "architecture.csv", newline="") as file:
        # binary digits: the demo's architecture or the paper's; greyscale digits are other data
        assert [row["setting"] for row in csv.DictReader(file)] == [in_distribution, dcgan]
    # The OOD row reuses the digit + ink model's separator and peers: each is named once
    # (four models with peers, five entries each, and the two DCGANs' model and separator).
    named = [line.split(":")[0] for line in metrics["provenance"]]
    assert len(named) == len(set(named)) == 17


@pytest.fixture(scope="module")
def k3_stores(tmp_path_factory) -> dict[int, tuple]:
    """jobs -> (store, what train_models said): demix-k3's models trained on one thread each
    by one job and by two side by side, once per module."""
    trained = {}
    for jobs in (1, 2):
        store = tmp_path_factory.mktemp(f"store-{jobs}")
        common = {"profile": "smoke", "checkpoint_store": store, "progress": False}
        with _threads(1):
            trained[jobs] = store, train_models("demix-k3", **common, jobs=jobs, threads=1)
    return trained


def test_stored_separators_are_reused_by_the_next_run(k3_stores, tmp_path):
    store, first = k3_stores[1]
    common = {"profile": "smoke", "checkpoint_store": store, "progress": False}
    # the model, its separator, the MixIT and RemixIT peers and the supervised bound
    assert sum("trained now" in line for line in first) == 5
    threads = " on 1 thread"  # what each training ran on
    assert all(threads in line for line in first if "trained now" in line)
    report = reproduce("demix-k3", tmp_path / "run", **common).parent
    reused = _provenance(report)
    assert not [line for line in reused if "trained now" in line]
    assert all(threads in line for line in reused if "reused" in line)
    (separator,) = store.glob("demix-digit-sines-lines-*/separator")
    assert json.loads((separator / "method.json").read_text())["method"] in METHODS


def test_two_jobs_train_what_one_trains_bit_for_bit(k3_stores):
    """--jobs 2 trains the steps that do not read each other side by side (demix-k3: the model;
    then its separator and MixIT; then RemixIT, taught by MixIT, and the bound): the same
    store as one job, weights equal bit for bit on one thread each, each model named once."""
    from safetensors.torch import load_file

    from demixgan.io.checkpoints import latest_checkpoint

    stores = {jobs: store for jobs, (store, _) in k3_stores.items()}
    named = {jobs: lines for jobs, (_, lines) in k3_stores.items()}
    for lines in named.values():
        assert len(lines) == 5 and all("trained now" in line and " on 1 thread" in line
                                       for line in lines)  # fmt: skip
    assert sorted(line.split(":")[0] for line in named[1]) == sorted(
        line.split(":")[0] for line in named[2]
    )
    runs = {jobs: sorted(p.parent.parent for p in store.rglob("checkpoints/*.safetensors"))
            for jobs, store in stores.items()}  # fmt: skip
    assert [r.relative_to(stores[1]) for r in runs[1]] == [
        r.relative_to(stores[2]) for r in runs[2]
    ]
    assert len(runs[1]) == 5
    for one, two in zip(runs[1], runs[2], strict=True):
        first, second = (load_file(latest_checkpoint(r / "checkpoints").weights_path)
                         for r in (one, two))  # fmt: skip
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), one.name


def test_jobs_below_one_are_refused(tmp_path, capsys):
    assert main(["reproduce", "demix-k3", "--jobs", "0", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--jobs" in err and "Traceback" not in err and not any(tmp_path.iterdir())


def test_a_device_this_machine_lacks_is_refused_before_any_work(tmp_path, capsys):
    """--device names a device that is not here: one paragraph, exit 2, no store, no report."""
    lacking = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or CUDA absent
    store, out = tmp_path / "store", tmp_path / "out"
    for device, message in (("gpu", "not one demixgan computes on"), (lacking, "cuda")):
        for run in (
            ["demix-k3", "-o", str(out)],
            ["all", "-o", str(out)],
            ["demix-k3", "--train-only"],
        ):
            argv = ["reproduce", *run, "--device", device, "--checkpoints", str(store)]
            assert main([*argv, "--profile", "smoke", "--jobs", "2"]) == 2
            err = capsys.readouterr().err
            assert message in err and "Traceback" not in err, err
            assert not any(tmp_path.iterdir())


STOPPED_WORKERS = """
import sys, time
from pathlib import Path

from demixgan.experiments.preparation import worker_pool
from demixgan.io.progress import progress_bar


def step(folder):
    with progress_bar(1, "a worker's step", enabled=False):
        (Path(folder) / f"{time.monotonic_ns()}").touch()
        time.sleep(60)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    pool = worker_pool(2)  # the pool reproduce --jobs 2 runs its steps in
    for _ in range(2):
        pool.apply_async(step, (str(folder),))
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.terminate()  # what reproduce --jobs does when SIGTERM or a failing step stops it
    pool.join()
    print(len(list(folder.iterdir())))
"""


def test_workers_stopped_mid_step_leave_no_semaphore_warning(tmp_path):
    """A SIGTERM'd `reproduce --jobs 2` terminates its workers mid-step; their progress bars'
    lock must not outlive them as a named semaphore, which Python's resource tracker reports
    as leaked when the command exits."""
    import subprocess
    import sys

    script, started = tmp_path / "workers.py", tmp_path / "started"
    script.write_text(STOPPED_WORKERS)
    started.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(started)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr, done.stderr


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_z_coupling_scores_each_latent_coupling(smoke_run):
    run = smoke_run("z-coupling")
    with open(run / "tables" / "separation-score.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["latents"] for row in rows] == ["independent z1, z2", "z2 = z1", "z2 = 0.1 z1"]
    metrics = json.loads((run / "metrics.json").read_text())
    for row in rows:
        assert PIXEL_RULE_ROW in metrics[row["latents"]]["scores"]  # every floor beside the fit
        gains = metrics[row["latents"]]["gain_over_split"]
        assert float(row["separation score"]) == pytest.approx(min(gains.values()), abs=0.006)


@pytest.mark.parametrize(
    ("name", "settings", "table"),
    [
        (
            "fashion",
            [
                "fashion+fashion (two generators)",
                "fashion+fashion (one shared generator)",
                "dress+bag",
            ],
            "table-2",
        ),
        (
            "mnist-fashion",
            ["digit8+dress (InfoGAN)", "digit8+dress (DCGAN)", "digit8+dress (DCGAN + InfoGAN)"],
            "figure-12",
        ),
    ],
)
def test_fashion_experiments_separate_fashion_mnist_test_images(
    name, settings, table, fashion_dir, smoke_run
):
    run = smoke_run(name)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [key for key in metrics if key in settings] == settings
    assert all("fashion-mnist test split" in metrics[s]["test images"] for s in settings)
    with open(run / "tables" / f"{table}.csv", newline="") as file:
        methods = {(row["setting"], row["method"]) for row in csv.DictReader(file)}
    assert {(s, "ICA") for s in settings} <= methods


def test_two_architectures_of_one_setting_share_their_peers(fashion_dir, smoke_run):
    """A peer never reads the GAN: mnist-fashion's three models of digit 8 + dress share their
    MixIT, RemixIT and supervised peers (trained once), so all score alike."""
    run = smoke_run("mnist-fashion")
    peers = [line.split(":")[0] for line in _provenance(run) if line.startswith("peers-")]
    assert sorted(peers) == sorted(f"{peers[0].split()[0]} {kind}" for kind in PEERS)
    metrics = json.loads((run / "metrics.json").read_text())
    infogan, dcgan, both = (
        metrics[s]["scores"]
        for s in (
            "digit8+dress (InfoGAN)",
            "digit8+dress (DCGAN)",
            "digit8+dress (DCGAN + InfoGAN)",
        )
    )
    for row in PEER_ROWS.values():
        assert infogan[row] == dcgan[row] == both[row]


def test_two_generators_and_one_shared_share_the_peers_of_exchangeable_objects(
    fashion_dir, smoke_run
):
    """Two objects of any class have no roles in the data, whichever generators learn them:
    fashion's two-generator and shared-generator settings share peers learned in any order
    (a bound learning the parts' stored order would learn their mean), trained once."""
    run = smoke_run("fashion")
    peers = [line.split(":")[0] for line in _provenance(run) if "fashion+fashion" in line]
    assert len(peers) == len(PEERS)
    metrics = json.loads((run / "metrics.json").read_text())
    two, shared = (
        metrics[s]["scores"]
        for s in ("fashion+fashion (two generators)", "fashion+fashion (one shared generator)")
    )
    for row in PEER_ROWS.values():
        assert two[row] == shared[row]


def test_the_shipped_model_shows_its_last_evolution_grid(tmp_path):
    from demixgan.experiments.demo import shipped_checkpoint
    from demixgan.experiments.figures import evolution_figures
    from demixgan.inference.api import load

    figures = evolution_figures(tmp_path, load(shipped_checkpoint()), "digit+sines")
    assert [f.path.name for f in figures] == ["evolution-digit-sines-demo-evolution.png"]
    assert figures[0].path.is_file() and "shipped model" in figures[0].caption


def test_train_only_prepares_every_model_that_the_run_then_reuses(tmp_path, capsys):
    store = tmp_path / "store"
    common = ["--profile", "smoke", "--checkpoints", str(store), "--no-progress"]
    assert main(["reproduce", "denoise-test", "--train-only", *common]) == 0
    trained = capsys.readouterr().out.splitlines()
    # three denoisers, a separator each and the classifier
    assert len(trained) == 7 and all("trained now" in line for line in trained)
    assert not any(tmp_path.glob("runs"))  # no run directory


@pytest.mark.parametrize("name", [*PAPER_ORDER, "demix-ink"])
def test_each_experiment_declares_every_model_it_uses(name, fashion_dir, smoke_run):
    """--train-only trains what an experiment declares; its run must then train nothing more,
    else side-by-side training would miss a model and the run would train it alone."""
    provenance = _provenance(smoke_run(name))
    assert provenance and not [line for line in provenance if "trained now" in line]


def test_panel_titles_fit_their_one_column_panels():
    """Separation figures have one-column panels: long labels overlapped their neighbours."""
    import matplotlib.pyplot as plt
    import torch

    from demixgan.reports.grids import panel_figure

    labels = [
        "digit-8 (truth)",
        "dress (truth)",
        "GAN: digit-8",
        "G(z): dress",
        "separator: digit-a",
        "ICA 1",
    ]
    figure = panel_figure([(label, torch.rand(8, 1, 28, 28)) for label in labels], ncol=1)
    renderer = figure.canvas.get_renderer()
    boxes = [axis.title.get_window_extent(renderer) for axis in figure.axes]
    assert all(left.x1 <= right.x0 for left, right in itertools.pairwise(boxes))
    # wrapped at spaces only: "separator:" once read "separato / r:"
    assert [axis.title.get_text().split() for axis in figure.axes] == [
        label.split() for label in labels
    ]
    plt.close(figure)


def test_panels_wrap_into_rows_that_keep_the_figure_readable():
    """Twelve denoising panels in one row made a 4,840 px wide figure; per_row wraps them."""
    import matplotlib.pyplot as plt
    import torch

    from demixgan.reports.grids import panel_figure

    panels = [(f"panel {index}", torch.rand(8, 1, 28, 28)) for index in range(10)]
    wide = panel_figure(panels, ncol=4)
    wrapped = panel_figure(panels, ncol=4, per_row=4)
    rows = {round(axis.get_position().y0, 3) for axis in wrapped.axes if axis.has_data()}
    assert len(rows) == 3 and sum(axis.has_data() for axis in wrapped.axes) == 10
    assert wrapped.get_figwidth() < 0.5 * wide.get_figwidth()
    plt.close(wide)
    plt.close(wrapped)


def test_a_reports_recorded_command_reproduces_its_numbers(smoke_run, tmp_path, monkeypatch):
    """metrics.json names the command, data directory and code that made it; running that
    command again from an empty directory (every model trained anew) gives the same numbers."""
    first = smoke_run("cs")
    recorded = json.loads((first / "metrics.json").read_text())
    assert recorded["command"] == "demixgan reproduce cs --profile smoke"
    assert recorded["code"]["version"] and "commit" in recorded["code"]
    assert recorded["threads"] == torch.get_num_threads()  # minutes depend on them
    assert reproduce_command("cs", "cpu", "../shared/data/mnist").endswith(
        "--data-dir ../shared/data/mnist"
    )
    assert reproduce_command("cs", "cpu", str(tmp_path)).endswith("--data-dir DIR")
    assert reproduce_command("cs", "cpu", None, device="cuda:0").endswith("--device cuda:0")

    again = tmp_path / "again"
    args = [*recorded["command"].split()[1:], "-o", str(again), "--no-progress"]
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0
    rerun = json.loads((again / "metrics.json").read_text())
    for record in (recorded, rerun):  # where the models came from and how long it took
        record.pop("provenance"), record.pop("minutes")
    assert rerun == recorded


def test_choices_read_the_training_digits_validation_split_beside_a_test_only_data_dir(
    shared_mnist_dir, isolated_data_env, tmp_path
):
    """RESULTS.md's commands give --data-dir a folder with the MNIST test set only: the test
    digits come from it, the validation digits that choose thresholds and alphas from the
    split carved from the digits the models train on, with nothing to download."""
    from demixgan.experiments.context import Context

    context = Context(PROFILES["cpu"], tmp_path, tmp_path / "store", str(shared_mnist_dir))
    test = context.test_digits(30)
    validation = context.validation_digits(30, "denoise-digit-sines")
    assert len(test) == len(validation) == 30
    assert set(validation.images.unique().tolist()) == {0.0, 1.0}  # binarized like the test
    shared = (test.images.flatten(1)[:, None] == validation.images.flatten(1)[None]).all(2)
    assert not shared.any()


def test_a_shipped_model_without_separators_gets_them_trained_into_the_store(tmp_path):
    """demix-test's digit + sines is the shipped model, which ships without a separator or
    peers: the cpu profile trains them into the checkpoint store, never into the package (the
    peers where every model of the same data finds them)."""
    from demixgan.experiments.context import Context
    from demixgan.experiments.demo import asset
    from demixgan.inference.options import SeparatorOptions

    profile = replace(PROFILES["cpu"], choice=ChoiceBudget(8))  # the method chosen on 8 mixtures
    context = Context(profile, tmp_path, tmp_path / "store", progress=False)
    trained = context.trained(context.config("demix-digit-sines"))
    assert trained.checkpoint.is_relative_to(asset(""))  # the shipped model, not trained now
    tiny = SeparatorOptions(steps=2, remix_steps=0, batch_size=4, width=4)
    context.separator(trained, tiny)
    context.separator(trained, tiny, "mixit")
    context.separator(trained, tiny, "remixit")  # taught by the stored MixIT peer
    (separator,) = (tmp_path / "store").glob("*/separator")
    assert (separator / "method.json").is_file()
    (peers,) = (tmp_path / "store").glob("peers-digit+sines-*")  # by what they learn from
    assert {p.name for p in peers.iterdir()} == {"mixit", "remixit"}
    assert not list(asset("").glob("demo/separator")) and not list(asset("").glob("demo/peers"))


def test_a_validation_record_from_before_the_matching_is_chosen_anew(tmp_path):
    """Records written before validation matched the parts to the truth (fashion + fashion's
    scored half its mixtures against the other object) are chosen again when a report reads
    them, stored, and the report's provenance says so."""
    from demixgan.experiments.context import Context
    from demixgan.inference.choice import ONE_ORDER
    from demixgan.inference.options import SeparatorOptions

    profile = replace(PROFILES["cpu"], choice=ChoiceBudget(8))  # the method chosen on 8 mixtures
    context = Context(profile, tmp_path, tmp_path / "store", progress=False)
    trained = context.trained(context.config("demix-digit-sines"))
    context.separator(trained, SeparatorOptions(steps=2, remix_steps=0, batch_size=4, width=4))
    (record,) = (tmp_path / "store").glob("*/separator/method.json")
    current = json.loads(record.read_text())
    assert current["matching"] == ONE_ORDER and context.separator_choice(trained) == current
    old = {key: value for key, value in current.items() if key != "matching"}
    record.write_text(json.dumps(old))
    assert context.separator_choice(trained) == current  # chosen anew, the same mixtures
    assert json.loads(record.read_text()) == current
    assert any("chosen anew" in line for line in context.provenance)


def test_a_separator_stored_before_an_option_existed_counts_it_at_its_default():
    """The shipped separators were trained before ``max_level`` and ``precision`` existed:
    reused as trained with their defaults, refused for a denoiser's options that draw other
    levels, and for bfloat16 steps (they were float32's, whatever the default becomes)."""
    from demixgan.experiments.context import _check_options
    from demixgan.experiments.demo import asset
    from demixgan.inference.options import SeparatorOptions
    from demixgan.training.separator_runs import finished_run

    folder = asset("demo-ink/separator")
    recorded = finished_run(folder).options
    assert "max_level" not in recorded
    _check_options(recorded, SeparatorOptions(), "demo separator", folder)
    with pytest.raises(DemixganError, match="other options"):
        _check_options(recorded, SeparatorOptions(max_level=6), "demo separator", folder)
    assert "precision" not in recorded
    with pytest.raises(DemixganError, match="other options"):
        _check_options(recorded, SeparatorOptions(precision="bfloat16"), "demo separator", folder)


def test_a_budget_grids_checkpoint_stands_in_for_the_model_a_report_would_train(
    tmp_path, one_thread
):
    """benchmarks/gan_budget.py trains a config past its length with its own checkpoint
    cadence. Adopted into the store (tools/adopt_budget_run.py), its checkpoint at the config's
    length and that checkpoint's separator are what a report would have trained, bit for bit;
    the report says where they came from, and nothing else can be adopted for that config."""
    from demixgan.experiments.context import Context, adopt_run
    from demixgan.experiments.demo import asset
    from demixgan.inference.api import load
    from demixgan.io.checkpoints import list_checkpoints, load_weights
    from demixgan.spec.config import load_config
    from demixgan.training.loop import train
    from demixgan.training.separator_runs import new_job, run_job

    profile = PROFILES["smoke"]
    fresh = Context(profile, tmp_path / "a", tmp_path / "fresh", progress=False)
    config = fresh.config("demix-digit-waves2")
    steps = config.train.max_steps
    grid = (  # gan_budget.py's settings for candidates `steps` and `2 * steps`
        f"train.max_steps={2 * steps}",
        f"train.epochs={2 * steps}",
        "train.checkpoint_every=1",
        "train.keep_last=1",
        f"train.keep_every={steps}",
        "train.checkpoint_every_epoch=false",
        "train.snapshot_every_epoch=false",
    )
    source = asset("experiments/demix-digit-waves2.toml")
    train(load_config(source, [*profile.train_overrides, *grid]), tmp_path / "grid", progress=False)
    kept = {c.step: c.weights_path for c in list_checkpoints(tmp_path / "grid" / "checkpoints")}
    assert sorted(kept) == [steps, 2 * steps]
    separator = tmp_path / f"sep-{steps}"
    options = fresh.separator_options(load(kept[steps]))
    run_job(
        new_job(kept[steps], options),
        separator,
        resume=False,
        progress=False,
        choice=profile.choice,
    )

    adopt_run(tmp_path / "store", config, tmp_path / "grid", separator)
    context = Context(profile, tmp_path / "b", tmp_path / "store", progress=False)
    adopted = context.trained(config)
    context.separator(adopted, options)
    assert "a GAN-budget grid's" in context.provenance[0]
    assert "reused" in context.provenance[1]
    trained_now = fresh.trained(config)
    assert "trained now" in fresh.provenance[0]
    for module, weights in load_weights(trained_now.checkpoint)[0].items():
        got = load_weights(adopted.checkpoint)[0][module]
        assert all(torch.equal(tensor, got[key]) for key, tensor in weights.items()), module
    with pytest.raises(DemixganError, match="has demix-digit-waves2's model already"):
        adopt_run(tmp_path / "store", config, tmp_path / "grid")
    other = load_config(source, [*profile.train_overrides, "train.lr_g=0.001"])
    with pytest.raises(DemixganError, match="another config"):
        adopt_run(tmp_path / "other", other, tmp_path / "grid")
    with pytest.raises(DemixganError, match="ships with demixgan"):
        shipped = load_config(asset("experiments/demix-digit-sines.toml"))  # the cpu profile's
        adopt_run(tmp_path / "other", shipped, tmp_path / "grid")
