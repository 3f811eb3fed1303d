"""Training throughput of a run config: bare train step, end to end, and the fp32 matmul rate.

Run: ``.venv/bin/python benchmarks/bench_train.py [--steps N] [--config PATH] [--set KEY=VALUE]``
(default: the paper's demixing architecture, ``configs/paper-demix-digit-sines.toml``). Prints a
Markdown table.

What is measured, all in one process and with the same thread count:

* matmul: ``torch.mm`` of square float32 matrices (1024, 2048), best and median GFLOP/s;
* batch draw: ``build_sampler(recipe).sample(64, g)`` (fresh mixtures of the recipe), and the
  in-loop real batch (an index into the fixed training set the Trainer builds once);
* FLOPs of one train step: ``torch.utils.flop_counter.FlopCounterMode`` over a real
  ``Trainer.train_step()``, cross-checked with an analytic count from the layer shapes;
* bare step: ``Trainer.train_step()`` on the config's real data, N steps timed one by one; the
  first ``--warmup`` steps are left out of the steady-state figures;
* end to end: ``train()`` with ``train.max_steps = N`` in a temp run dir, progress bar off, so
  it includes the stats log, the epoch-end evolution grids and the checkpoints the config asks
  for. One-time setup (data set, model build, run dir) and the final checkpoint verification
  are outside the step loop and reported apart; the ratio compares the same steps
  (``--warmup`` .. N) of the bare run and of the loop.

Targets: end to end >= 90% of the bare step; the step >= 60% of the measured matmul rate.
Absolute figures depend on the machine and on what else runs on it (2 OpenMP threads on 2
shared cores slow down many times when another job runs): compare ratios measured in one run.
``--repeats R`` runs R rounds (matmul, batch draw, bare run, matmul again, end-to-end run) and
reports the least loaded one, with a warning when the load changed within it. The end-to-end
/ bare ratio of two separate runs carries their difference in step time (a few % here even on
a quiet machine: the unfused Adam's temporaries meet the allocator in a different state in each
run); the train_step share of the end-to-end loop, from one run, is the steadier measure of
what logging, grids and checkpoints cost.
``--fused-adam`` and ``--freeze-d-in-g-step`` measure two changes to the step (see ``Variant``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from demixgan.io.run_files import STATS_FILE
from demixgan.spec.config import RunConfig, load_config
from demixgan.spec.device import resolve_device
from demixgan.spec.factory import training_sampler
from demixgan.training import engine, loop

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "paper-demix-digit-sines.toml"
TARGET_END_TO_END = 0.90
TARGET_MATMUL = 0.60


# -- machine ---------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1-minute load average: above the thread count, other jobs shared the cores."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(
    size: int, repeats: int, device: torch.device, warmup: int = 3
) -> tuple[float, float]:
    """Best and median GFLOP/s of ``torch.mm`` on two float32 ``size`` x ``size`` matrices."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        times.append(time.perf_counter() - start)
    flops = 2.0 * size**3
    return flops / min(times) / 1e9, flops / statistics.median(times) / 1e9


def median_ms(call: Callable[[], object], calls: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


# -- FLOPs -----------------------------------------------------------------------------------
_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def layer_macs(layer: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-adds of one sample through a Linear, Conv2d or ConvTranspose2d layer."""
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    kernel = layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, nn.ConvTranspose2d):  # every input pixel scatters a Cout x k x k patch
        return inputs[0].numel() * layer.out_channels // layer.groups * kernel
    return output[0].numel() * layer.in_channels // layer.groups * kernel


def traced_macs(module: nn.Module, *args: object) -> list[tuple[str, int]]:
    """(layer name, multiply-adds per sample) of every weight layer, in the order they run."""
    names = {layer: name for name, layer in module.named_modules()}
    found: list[tuple[str, int]] = []

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        found.append((names[layer], layer_macs(layer, inputs[0], output)))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, _LAYERS)]
    was_training = module.training
    module.eval()  # same shapes; batch norm neither needs > 1 sample nor updates its statistics
    try:
        with torch.no_grad():
            module(*args)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return found


@dataclass(frozen=True)
class StepFlops:
    total: float
    parts: dict[str, float]


def analytic_step_flops(
    trainer: loop.Trainer, *, d_weight_grads_in_g_step: bool = True
) -> StepFlops:
    """FLOPs (2 x multiply-adds) of Linear/Conv layers in one ``train_step`` of this loop.

    D step (x ``d_steps``): the fake batch is made once with grad (G forward on B); D runs
    forward on 2B (real + detached fake) and backward: weight gradients of every layer, input
    gradients of every layer but the first (neither half of the input needs them). G step: D
    forward on the reused fake (B), backward through D (input gradients of every layer, and the
    weight gradients of D, which autograd computes since D's parameters require grad, unless
    ``d_weight_grads_in_g_step`` is False) and through G (weight gradients, input gradients of
    every layer but each generator's first).
    Backward of a layer = 2x its forward (one product for the weights, one for the input).
    Assumes ``r1_gamma == 0`` (the R1 penalty's double backward is not counted).
    """
    train = trainer.config.train
    batch = train.batch_size // trainer.dist.world_size
    model, disc = trainer.model, trainer.discriminator
    generator = torch.Generator().manual_seed(0)
    latents = {k: v.to(trainer.device) for k, v in model.sample_latents(1, generator).items()}
    known = {k: v.to(trainer.device) for k, v in model.sample_known(1, generator).items()}
    g_layers = traced_macs(model, latents, known)
    sample = trainer.data.observations[:1].to(trainer.device)
    d_layers = traced_macs(disc, sample)
    g_fwd = sum(m for _, m in g_layers)
    # The first layer of each generator sees the latent z, which needs no gradient.
    g_first = sum(
        next(m for name, m in g_layers if name.startswith(f"generators.{key}."))
        for key in model.generators
    )
    d_fwd = sum(m for _, m in d_layers)
    d_first = d_layers[0][1]
    d_step = batch * g_fwd + 2 * batch * d_fwd + 2 * batch * (d_fwd + d_fwd - d_first)
    d_back_g = 2 * d_fwd if d_weight_grads_in_g_step else d_fwd
    g_step = batch * d_fwd + batch * d_back_g + batch * (2 * g_fwd - g_first)
    parts = {
        "G forward (per D step)": 2.0 * batch * g_fwd,
        "D forward + backward on 2B (per D step)": 2.0 * (d_step - batch * g_fwd),
        "G step: D forward + backward on B": 2.0 * batch * (d_fwd + d_back_g),
        "G step: G backward": 2.0 * batch * (2 * g_fwd - g_first),
    }
    return StepFlops(2.0 * (train.d_steps * d_step + g_step), parts)


def counted_step_flops(trainer: loop.Trainer) -> tuple[float, dict[str, float]]:
    """FLOPs of one real ``train_step`` by ``FlopCounterMode`` (advances the trainer a step)."""
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step()
    per_op = {str(op): float(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return float(counter.get_total_flops()), per_op


# -- the measured runs -----------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """Changes to the loop's step that this benchmark can apply to a Trainer, to measure them.

    Neither changes the trajectory: fused Adam is the same update in one kernel; freezing D's
    parameters during the generator step only skips D's weight gradients there, which the
    next D step discards anyway (``zero_grad(set_to_none=True)`` before its backward).
    """

    fused_adam: bool = False
    freeze_d_in_g_step: bool = False

    def describe(self) -> str:
        changes = [
            name
            for name, on in (
                ("Adam(fused=True)", self.fused_adam),
                ("D parameters frozen in the G step", self.freeze_d_in_g_step),
            )
            if on
        ]
        return ", ".join(changes) + " (benchmark options)" if changes else "none: loop.py as is"

    def apply(self, trainer: loop.Trainer) -> None:
        if self.fused_adam:
            for attr, module in (("opt_g", trainer.model), ("opt_d", trainer.discriminator)):
                old = getattr(trainer, attr)
                options = {k: old.defaults[k] for k in ("lr", "betas", "eps", "weight_decay")}
                setattr(trainer, attr, torch.optim.Adam(module.parameters(), fused=True, **options))
        if self.freeze_d_in_g_step:
            # The D step feeds D [real, fake.detach()] (no grad); the G step feeds it the fake
            # batch, which needs grad. So D's parameters need grad exactly when its input does not.
            def hook(module: nn.Module, args: tuple) -> None:
                wanted = not args[0].requires_grad
                for parameter in module.parameters():
                    parameter.requires_grad_(wanted)

            trainer.discriminator.register_forward_pre_hook(hook)


@dataclass
class BareRun:
    setup_s: float
    step_s: list[float]
    faults_per_step: float  # minor page faults per steady step (fresh memory from the kernel)
    sys_ms_per_step: float  # kernel CPU time per steady step


def run_bare(config: RunConfig, steps: int, warmup: int, device: str, variant: Variant) -> BareRun:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        start = time.perf_counter()
        trainer = loop.Trainer(config, Path(tmp) / "run", device=device)
        setup = time.perf_counter() - start
        variant.apply(trainer)
        times = []
        for index in range(steps):
            if index == warmup:
                usage = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            trainer.train_step()  # returns Python floats: the step has finished on any device
            times.append(time.perf_counter() - start)
        end = resource.getrusage(resource.RUSAGE_SELF)
    counted = steps - warmup
    return BareRun(
        setup,
        times,
        (end.ru_minflt - usage.ru_minflt) / counted,
        1e3 * (end.ru_stime - usage.ru_stime) / counted,
    )


@dataclass
class EndToEndRun:
    total_s: float = 0.0  # the whole train() call
    loop_s: float = 0.0  # its step loop (train_step, logging, evolution grids, checkpoints)
    step_end: list[float] = field(default_factory=list)  # after each step, from the loop start
    step_s: list[float] = field(default_factory=list)
    checkpoint_s: list[float] = field(default_factory=list)
    evolution_s: list[float] = field(default_factory=list)
    checkpoint_steps: list[int] = field(default_factory=list)
    evolution_epochs: list[int] = field(default_factory=list)
    log_records: int = 0

    def window_s(self, warmup: int) -> float:
        """The loop's time after its first ``warmup`` steps (everything it did after those)."""
        return self.loop_s - self.step_end[warmup - 1]


def _timed(call: Callable, into: list[float]) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    return wrapper


def run_end_to_end(config: RunConfig, device: str, variant: Variant) -> EndToEndRun:
    """``train()`` as the CLI runs it; its step loop is timed apart from setup and teardown.

    The engine's ``run_steps`` and ``save_checkpoint`` are wrapped (not changed): the wrappers
    note when the loop starts and ends, and time each step, checkpoint and evolution grid.
    """
    original, original_save = engine.run_steps, engine.save_checkpoint
    result = EndToEndRun()

    def timed_run_steps(trainer: loop.Trainer, *args: object, **kwargs: object) -> None:
        variant.apply(trainer)
        step_fn, evolution_fn = trainer.train_step, trainer.save_evolution
        checkpoint_fn = original_save

        def step() -> dict[str, float]:
            start = time.perf_counter()
            values = step_fn()
            end = time.perf_counter()
            result.step_s.append(end - start)
            result.step_end.append(end - loop_start)
            return values

        def checkpoint(task, *args: object):
            result.checkpoint_steps.append(task.step)
            return checkpoint_fn(task, *args)

        def evolution(epoch: int) -> None:
            result.evolution_epochs.append(epoch + 1)
            evolution_fn(epoch)

        trainer.train_step = step
        engine.save_checkpoint = _timed(checkpoint, result.checkpoint_s)
        trainer.save_evolution = _timed(evolution, result.evolution_s)
        loop_start = time.perf_counter()
        try:
            original(trainer, *args, **kwargs)
        finally:
            result.loop_s = time.perf_counter() - loop_start

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        run_dir = Path(tmp) / "run"
        engine.run_steps = timed_run_steps
        try:
            start = time.perf_counter()
            loop.train(config, run_dir, device=device, progress=False)
            result.total_s = time.perf_counter() - start
        finally:
            engine.run_steps, engine.save_checkpoint = original, original_save
        stats = run_dir / STATS_FILE
        result.log_records = len(stats.read_text().splitlines()) if stats.exists() else 0
    return result


# -- report ----------------------------------------------------------------------------------
def _gflops(flops: dict[str, float]) -> str:
    return ", ".join(f"{name} {value / 1e9:.3f} G" for name, value in flops.items())


def _times(label: str, times: list[float], at: list[int], unit: str) -> tuple[str, str]:
    mean = 1e3 * statistics.fmean(times) if times else 0.0
    where = f" ({unit} {', '.join(map(str, at))})" if at else ""
    return label, f"{len(times)} x {mean:.0f} ms = {sum(times):.2f} s{where}"


def _verdict(name: str, value: float, target: float) -> str:
    return f"{name} {value:.1%} {'meets' if value >= target else 'MISSES'} the {target:.0%} target"


@dataclass
class Repeat:
    """One round: matmul, batch draw, bare run, matmul again, end-to-end run."""

    mm_before: dict[int, tuple[float, float]]
    draw_ms: float
    bare: BareRun
    mm_after: dict[int, tuple[float, float]]
    e2e: EndToEndRun | None
    load: str

    def matmul(self, size: int) -> tuple[float, float]:
        """Best and median of the less loaded of the two matmul measurements."""
        return max(self.mm_before[size], self.mm_after[size], key=lambda rate: rate[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="steps of each timed run (default: 3 epochs of the config, 1 if that is > 600)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the fastest is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--mm-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--mm-repeats", type=int, default=10)
    parser.add_argument(
        "--fused-adam", action="store_true", help="measure with Adam(fused=True) optimisers"
    )
    parser.add_argument(
        "--freeze-d-in-g-step",
        action="store_true",
        help="measure without D's (discarded) weight gradients in the G step",
    )
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override, as in 'demixgan train --set' (repeatable)",
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])
    device = resolve_device(args.device)
    variant = Variant(args.fused_adam, args.freeze_d_in_g_step)

    config = load_config(args.config, overrides=args.set)
    if args.freeze_d_in_g_step and config.train.r1_gamma > 0:
        parser.error("--freeze-d-in-g-step assumes train.r1_gamma = 0 (R1 needs grad on real)")
    batch = config.train.batch_size
    sampler, count = training_sampler(config)
    steps_per_epoch = loop._Schedule.of(config, count).steps_per_epoch
    steps = args.steps or (3 * steps_per_epoch if 3 * steps_per_epoch <= 600 else steps_per_epoch)
    if steps <= args.warmup:
        parser.error(f"--steps ({steps}) must exceed --warmup ({args.warmup})")
    config = load_config(args.config, overrides=[*args.set, f"train.max_steps={steps}"])
    print(f"# {config.name}: {config.description}", flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}, {device}")
    generator = torch.Generator().manual_seed(0)

    def matmul() -> dict[int, tuple[float, float]]:
        return {n: matmul_rate(n, args.mm_repeats, device) for n in args.mm_sizes}

    repeats: list[Repeat] = []
    for index in range(args.repeats):
        load = load_average()
        mm_before = matmul()
        draw_ms = median_ms(lambda: sampler.sample(batch, generator), 200)
        bare = run_bare(config, steps, args.warmup, args.device, variant)
        mm_after = matmul()
        e2e = None if args.skip_end_to_end else run_end_to_end(config, args.device, variant)
        repeats.append(Repeat(mm_before, draw_ms, bare, mm_after, e2e, load))
        steady = bare.step_s[args.warmup :]
        line = (
            f"[{index + 1}/{args.repeats}] load {load}; matmul median GFLOP/s before / after "
            + ", ".join(f"{n}: {mm_before[n][1]:.0f} / {mm_after[n][1]:.0f}" for n in mm_before)
            + f"; sample({batch}) {draw_ms:.3f} ms; bare: first steps (ms) "
            + " ".join(f"{1e3 * t:.0f}" for t in bare.step_s[:3])
            + f", steady median {1e3 * statistics.median(steady):.1f} ms"
        )
        if e2e is not None:
            window = e2e.window_s(args.warmup)
            line += (
                f"; steps {args.warmup + 1}..{steps}: end to end {window:.2f} s vs bare "
                f"{sum(steady):.2f} s = {sum(steady) / window:.1%}, train_step share of the loop "
                f"{sum(e2e.step_s[args.warmup :]) / window:.1%}"
            )
        print(line, flush=True)

    # FLOPs of one real step, and the in-loop real batch (a fresh trainer, after the timings).
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        trainer = loop.Trainer(config, Path(tmp) / "run", device=args.device)
        variant.apply(trainer)
        trainer.train_step()
        step_index = iter(range(10**9))
        real_ms = median_ms(lambda: trainer._real_batch(next(step_index) % steps), 200)
        counted, per_op = counted_step_flops(trainer)
        analytic = analytic_step_flops(
            trainer, d_weight_grads_in_g_step=not variant.freeze_d_in_g_step
        )

    # The least loaded round: the fastest bare + end-to-end time (not the fastest bare run
    # alone, which would pair a lucky bare run with an ordinary end-to-end one).
    chosen = min(
        repeats,
        key=lambda r: (
            sum(r.bare.step_s[args.warmup :])
            + (r.e2e.window_s(args.warmup) if r.e2e is not None else 0.0)
        ),
    )
    bare = chosen.bare
    steady = bare.step_s[args.warmup :]
    bare_median = statistics.median(steady)
    achieved = counted / 1e9 / bare_median
    mm_ref_size = max(args.mm_sizes, key=lambda n: chosen.matmul(n)[1])
    mm_ref = chosen.matmul(mm_ref_size)[1]
    rows: list[tuple[str, str]] = [
        ("config", f"`{args.config.name}` ({config.name}), batch {batch}"),
        ("torch / threads", f"{torch.__version__} / {torch.get_num_threads()}"),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} logical CPUs ({platform.machine()})"),
        ("device", str(device)),
        (
            "rounds (the least loaded reported) / its 1-min load average",
            f"{args.repeats} / {chosen.load}",
        ),
        ("changes to the step", variant.describe()),
    ]
    for n in args.mm_sizes:
        best, med = chosen.matmul(n)
        rows.append((f"fp32 matmul {n}x{n} (best / median)", f"{best:.1f} / {med:.1f} GFLOP/s"))
    rows += [
        ("FLOPs per step (FlopCounterMode)", f"{counted / 1e9:.3f} GFLOP"),
        ("FLOPs per step (analytic, layer shapes)", f"{analytic.total / 1e9:.3f} GFLOP"),
        (
            f"batch draw: `sampler.sample({batch}, g)` ({config.data.recipe}), median",
            f"{chosen.draw_ms:.3f} ms",
        ),
        ("batch draw in the loop: index of the fixed set, median", f"{real_ms:.3f} ms"),
        (
            "one-time setup: Trainer (data set, models, optimisers), first / later rounds",
            f"{repeats[0].bare.setup_s:.2f} / "
            + (
                f"{statistics.median(r.bare.setup_s for r in repeats[1:]):.2f}"
                if repeats[1:]
                else "-"
            )
            + " s (in no figure below)",
        ),
        (
            f"bare step, steps {args.warmup + 1}..{steps} (median / mean)",
            f"{1e3 * bare_median:.1f} / {1e3 * statistics.fmean(steady):.1f} ms",
        ),
        (
            "bare step: page faults / kernel CPU time per step",
            f"{bare.faults_per_step:,.0f} / {bare.sys_ms_per_step:.1f} ms",
        ),
        ("**bare step throughput** (median step)", f"**{batch / bare_median:,.0f} mixtures/s**"),
        ("bare step achieved (median step)", f"{achieved:.1f} GFLOP/s"),
        (
            f"**step / matmul rate** (median, {mm_ref_size})",
            f"**{achieved / mm_ref:.1%}** (target >= {TARGET_MATMUL:.0%})",
        ),
    ]
    verdicts = [_verdict("step / matmul", achieved / mm_ref, TARGET_MATMUL)]
    e2e = chosen.e2e
    if e2e is not None:
        window = e2e.window_s(args.warmup)
        timed = steps - args.warmup
        in_window = e2e.step_s[args.warmup :]
        e2e_rate = timed * batch / window
        bare_rate = timed * batch / sum(steady)
        ratio, in_run = e2e_rate / bare_rate, sum(in_window) / window
        others = window - sum(in_window) - sum(e2e.checkpoint_s) - sum(e2e.evolution_s)
        step_mean = statistics.fmean(in_window)
        per_epoch = (
            1 + (steps_per_epoch - 1) // config.train.checkpoint_every
            if config.train.checkpoint_every_epoch
            else steps_per_epoch / config.train.checkpoint_every
        )
        grids = config.train.snapshot_every_epoch
        epoch_cost = per_epoch * statistics.fmean(e2e.checkpoint_s or [0.0])
        if grids:
            epoch_cost += statistics.fmean(e2e.evolution_s or [0.0])
        epoch_steps = steps_per_epoch * step_mean
        rows += [
            ("bare step throughput (mean, same steps)", f"{bare_rate:,.0f} mixtures/s"),
            (
                f"**end to end** `train()`, steps {args.warmup + 1}..{steps}",
                f"**{e2e_rate:,.0f} mixtures/s** ({window:.2f} s)",
            ),
            (
                "**end to end / bare step** (same steps, two runs)",
                f"**{ratio:.1%}** (target >= {TARGET_END_TO_END:.0%})",
            ),
            (
                "train_step share of the end-to-end loop (one run)",
                f"{in_run:.1%} ({sum(in_window):.2f} s, {1e3 * step_mean:.1f} ms/step)",
            ),
            _times("  checkpoints", e2e.checkpoint_s, e2e.checkpoint_steps, "after steps"),
            _times("  evolution grids", e2e.evolution_s, e2e.evolution_epochs, "epochs"),
            (
                "  the rest (stats log, finiteness checks, loop)",
                f"{others:.3f} s ({e2e.log_records} stats records)",
            ),
            (
                f"projected epoch ({steps_per_epoch} steps, {per_epoch} checkpoint(s)"
                + (", 1 grid" if grids else "")
                + ("" if e2e.evolution_s or not grids else " unmeasured")
                + "): step share",
                f"{epoch_steps / (epoch_steps + epoch_cost):.1%}",
            ),
            (
                "end to end incl. the warm-up steps",
                f"{steps * batch / e2e.loop_s:,.0f} mixtures/s ({e2e.loop_s:.2f} s)",
            ),
            (
                "`train()` outside the loop (Trainer, run dir; final checkpoint lookup)",
                f"{e2e.total_s - e2e.loop_s:.2f} s (not in the end-to-end figures)",
            ),
        ]
        verdicts += [
            _verdict("end to end / bare", ratio, TARGET_END_TO_END),
            _verdict("in-run step share", in_run, TARGET_END_TO_END),
        ]
    rows.append(("command", f"`{command}`"))

    print("\n| quantity | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\nFLOPs per op (FlopCounterMode): " + _gflops(per_op))
    print("FLOPs per part (analytic): " + _gflops(analytic.parts))
    warnings = []
    before, after = chosen.mm_before[mm_ref_size][1], chosen.mm_after[mm_ref_size][1]
    if min(before, after) < 0.9 * max(before, after):
        warnings.append("the matmul rate changed by > 10% around the bare run")
    if e2e is not None and abs(step_mean / statistics.fmean(steady) - 1) > 0.05:
        warnings.append("the step time differs by > 5% between the bare and end-to-end runs")
    if warnings:
        print("\nWARNING: other load on the machine: " + "; ".join(warnings) + ". Rerun.")
    print("\n" + "; ".join(verdicts) + ".")


if __name__ == "__main__":
    main()
