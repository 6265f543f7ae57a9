"""What GradientProbe costs per training step, measured side by side with its peers (issue 16).

Every configuration trains its own copy of one MLP with plain SGD; all of them run interleaved in
one process (round-robin blocks of steps, the order rotated every round, two untimed warm-up
steps each), so machine noise hits all alike. Each prints its median step time over the bare step's:

- bare: forward, backward, SGD step
- naive loop: `[p.grad.norm().item() for p in params]` (float32; one host read per parameter)
- Lightning `grad_norm(model, 2)`, read as floats as a logger would (skipped when not installed)
- `wandb.watch(log="gradients", log_freq=1)`, offline (skipped when not installed)
- vgx gradient magnitudes: `GradientProbe(activations=False, act_grads=False, updates=False,
  time=False)`: per-weight grad_norm, grad_total_norm, nonfinite every step, float64-exact
- vgx + act_grad_norm: the same and the back-propagated ‖∂L/∂(layer output)‖ every step
- vgx defaults: `GradientProbe(model)`, as `vgx run` probes: gradient magnitudes every step, the
  detail groups on the log grid (vgx/probe/schedule.py). Its cost depends on the run's length, so
  it is given for a 200-step run (`vgx run`'s default): the detailed share of those 200 steps
  times the median detailed step plus the rest times the median light step, both measured here
- vgx all metrics: `detail_every=1`, everything every step (histograms off)
- vgx all + histograms: and `hist_every=1`, every layer's three histograms every step

Then how the cost grows with the work (width 256 at depth 10, 50, 200; width 1024 at depth 10,
50; fewer steps where a step is slow), and the memory and disk cost of streaming a long run.
`--device cuda` runs the same loops on a GPU (synchronised around each timed step);
`--baseline REV` adds the probe of git revision REV (its gradient magnitudes and its defaults)
to the peer table, before and after side by side in one process. The machine may be shared:
each table says the load average (1, 5, 15 min) before and after it. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import inspect
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vgx.probe import GradientProbe
from vgx.probe.schedule import is_detailed
from vgx.store import MetricsWriter, read_metrics

RUN_STEPS = 200  # `vgx run`'s default steps: the run over which the defaults' cost is averaged
GRADIENTS_ONLY = {"act_grads": False, "activations": False, "updates": False, "time": False}
VGX: dict[str, dict[str, Any]] = {
    "vgx gradient magnitudes": GRADIENTS_ONLY,
    "vgx + act_grad_norm": {**GRADIENTS_ONLY, "act_grads": True},
    "vgx defaults (200-step run)": {},
    "vgx all metrics": {"detail_every": 1},
    "vgx all + histograms": {"detail_every": 1, "hist_every": 1},
}
ACTIVATIONS = {"ReLU + He init": "relu", "tanh, default init": "tanh"}
# An older probe without the act_grads switch records act_grad_norm in its weights group.
OLD_WEIGHTS_GROUP = {"activations": False, "updates": False, "time": False}


def mlp(depth: int, width: int, act: str = "relu") -> nn.Sequential:
    """depth Linear layers of `width` (10 outputs); ReLU with He init or tanh with PyTorch's."""
    unit = nn.ReLU if act == "relu" else nn.Tanh
    layers: list[nn.Module] = []
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), unit()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    if act == "relu":
        for module in model:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return model


def baseline_probe(rev: str, into: Path) -> type:
    """GradientProbe as of git revision `rev`, imported beside today's as package vgx_baseline."""
    archive = subprocess.run(["git", "archive", rev, "vgx"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    package = into / "vgx_baseline"
    (into / "vgx").rename(package)
    for source in package.rglob("*.py"):
        text = re.sub(r"\b(from|import) vgx\b", r"\1 vgx_baseline", source.read_text())
        source.write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("vgx_baseline.probe").GradientProbe


def baseline_rows(probe: type) -> dict[str, dict[str, Any]]:
    """The baseline's configurations, named for what they record at that revision."""
    if "act_grads" in inspect.signature(probe).parameters:
        return {"baseline: gradient magnitudes": GRADIENTS_ONLY, "baseline: defaults": {}}
    return {"baseline: weights group + act_grad_norm": OLD_WEIGHTS_GROUP, "baseline: defaults": {}}


def naive_norms(model: nn.Module) -> list[float]:
    """What the probe replaces: one float32 norm and one host read per parameter."""
    return [p.grad.norm().item() for p in model.parameters() if p.grad is not None]


def lightning_norms() -> Callable[[nn.Module], object] | None:
    try:
        from lightning.pytorch.utilities import grad_norm
    except ImportError:
        return None
    return lambda model: {k: float(v) for k, v in grad_norm(model, norm_type=2).items()}


class Loop:
    """One configuration: its own model copy, SGD optimizer and (maybe) probe."""

    def __init__(
        self,
        model: nn.Module,
        make_probe: Callable[[nn.Module], GradientProbe] | None = None,
        after_backward: Callable[[nn.Module], object] | None = None,
    ) -> None:
        self.model = copy.deepcopy(model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.probe = make_probe(self.model) if make_probe else None
        self.after_backward = after_backward
        self.step = 0
        self.times: list[float] = []
        self.cpu: list[float] = []  # the main thread's CPU time: blind to other processes
        self.detailed: list[bool] = []  # per timed step: did the probe record the detail groups

    def run(self, x: torch.Tensor, y: torch.Tensor, steps: int, keep: bool) -> None:
        for _ in range(steps):
            sync(x.device)
            start, cpu = time.perf_counter(), time.thread_time()
            loss = nn.functional.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            if self.after_backward:
                self.after_backward(self.model)
            if self.probe:
                self.probe.capture(self.step, loss)
            self.optimizer.step()
            if self.probe:
                self.probe.commit()
            sync(x.device)
            if keep:
                self.times.append(time.perf_counter() - start)
                self.cpu.append(time.thread_time() - cpu)
                # a --baseline probe older than the schedule details every probed step
                detailed = getattr(self.probe, "is_detailed", lambda step: True)
                self.detailed.append(self.probe is not None and detailed(self.step))
            self.step += 1

    def cost(self, cpu: bool = False) -> float:
        """Median step time (wall, or the main thread's CPU time); for a scheduled probe, the
        mean over a RUN_STEPS-step run."""
        times = self.cpu if cpu else self.times
        light = [t for t, d in zip(times, self.detailed, strict=True) if not d]
        heavy = [t for t, d in zip(times, self.detailed, strict=True) if d]
        if not (light and heavy):
            return statistics.median(times)
        share = sum(is_detailed(s, self.probe.detail_every) for s in range(RUN_STEPS))
        share /= RUN_STEPS
        return share * statistics.median(heavy) + (1 - share) * statistics.median(light)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def wandb_run(tmp: Path) -> Iterator[Any]:
    """An offline wandb run (no network), or None when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        yield None
        return
    os.environ["WANDB_MODE"] = "offline"
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
    run = wandb.init(dir=str(tmp), project="vgx-bench", mode="offline", settings=settings)
    try:
        yield run
    finally:
        run.finish()


def configurations(
    model: nn.Module, tmp: Path, wandb: Any, rows: tuple[str, ...], baseline: type | None = None
) -> dict[str, Loop]:
    loops = {"bare": Loop(model), "naive loop": Loop(model, after_backward=naive_norms)}
    lightning = lightning_norms()
    if lightning is not None and "Lightning grad_norm" in rows:
        loops["Lightning grad_norm"] = Loop(model, after_backward=lightning)
    if wandb is not None and "wandb.watch" in rows:
        loops["wandb.watch"] = Loop(model, after_backward=lambda _: wandb.log({}))
        wandb.watch(loops["wandb.watch"].model, log="gradients", log_freq=1)
    for name, options in VGX.items():
        if name in rows:
            sink = MetricsWriter(tmp / f"{name}-{len(list(tmp.iterdir()))}")
            loops[name] = Loop(model, lambda m, o=options, s=sink: GradientProbe(m, sink=s, **o))
    if baseline is not None:  # the probe of --baseline REV: gradient magnitudes, and its defaults
        for name, options in baseline_rows(baseline).items():
            sink = MetricsWriter(tmp / f"{name}-{len(list(tmp.iterdir()))}")
            loops[name] = Loop(model, lambda m, o=options, s=sink: baseline(m, sink=s, **o))
    return loops


def interleaved(loops: dict[str, Loop], device: torch.device, width: int, rounds: int, block: int):
    x = torch.randn(128, width, device=device)
    y = torch.randint(0, 10, (128,), device=device)
    order = list(loops.values())
    for loop in order:  # two untimed steps each warm up the allocator and the caches
        loop.run(x, y, 2, keep=False)
    for _ in range(rounds):
        for loop in order:
            loop.run(x, y, block, keep=True)
        order = order[1:] + order[:1]
    for loop in loops.values():
        if loop.probe is not None:
            loop.probe.close()


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def peer_table(
    args: argparse.Namespace, tmp: Path, wandb: Any, threads: int, baseline: type | None
) -> None:
    """The issue's table: every configuration, ReLU+He and tanh-default, depth 50 × 256."""
    torch.set_num_threads(threads)
    rows = ("Lightning grad_norm", "wandb.watch", *VGX)
    before = load()
    costs: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for label, act in ACTIVATIONS.items():
        torch.manual_seed(0)
        model = mlp(50, 256, act).to(args.device)
        loops = configurations(model, tmp, wandb, rows, baseline)
        interleaved(loops, torch.device(args.device), 256, args.rounds, args.block)
        if "wandb.watch" in loops:
            wandb.unwatch(loops["wandb.watch"].model)
        costs[label] = {name: loop.cost() for name, loop in loops.items()}
        cpu[label] = {name: loop.cost(cpu=True) for name, loop in loops.items()}
    # With one thread the main thread's CPU time is the whole step's, and it does not count
    # the time other processes take the core: the figure a shared machine can still give.
    with_cpu = threads == 1 and args.device == "cpu"
    print(
        f"\nMLP depth 50 x width 256, batch 128, plain SGD, {args.device}, {threads} threads; "
        f"{args.rounds} rounds of {args.block} steps per configuration; load average "
        f"{before} before, {load()} after; ratios of median wall times"
        + ("; in brackets of median CPU times" if with_cpu else "")
    )
    print(f"| configuration | {' | '.join(ACTIVATIONS)} |\n| --- |{' --- |' * len(ACTIVATIONS)}")
    bare = " | ".join(f"{costs[a]['bare'] * 1e3:.1f} ms" for a in ACTIVATIONS)
    print(f"| bare step | {bare} |")
    for name in costs[next(iter(ACTIVATIONS))]:
        if name != "bare":
            ratios = " | ".join(
                f"{costs[a][name] / costs[a]['bare']:.3f}x"
                + (f" ({cpu[a][name] / cpu[a]['bare']:.3f}x)" if with_cpu else "")
                for a in ACTIVATIONS
            )
            print(f"| {name} | {ratios} |")
    for name in ("Lightning grad_norm", "wandb.watch"):
        if name not in costs[next(iter(ACTIVATIONS))]:
            print(f"| {name} | skipped: not installed (pip install 'vgx[bench,lightning]') |")


# depth, width, timed rounds, steps per round: about as long for each shape (a 50 x 1024 step
# takes ~16x a 50 x 256 one)
SHAPES = ((10, 256, 4, 4), (50, 256, 4, 4), (200, 256, 2, 2), (10, 1024, 2, 2), (50, 1024, 2, 1))
GROWTH_ROWS = ("vgx gradient magnitudes", "vgx + act_grad_norm", "vgx defaults (200-step run)")
GROWTH_ROWS += ("vgx all metrics",)


def growth_table(args: argparse.Namespace, tmp: Path, threads: int) -> None:
    """How the cost grows with the work (ReLU + He): fewer rounds where a step is slow."""
    torch.set_num_threads(threads)
    print(
        f"\nReLU + He, batch 128, {args.device}, {threads} threads: ratio to the bare step; "
        f"load average {load()} before"
    )
    names = ("naive loop", *GROWTH_ROWS)
    print(f"| depth x width | bare ms | rounds x steps | {' | '.join(names)} |")
    print(f"| --- | --- | --- |{' --- |' * len(names)}")
    for depth, width, rounds, block in SHAPES:
        torch.manual_seed(0)
        model = mlp(depth, width).to(args.device)
        loops = configurations(model, tmp, None, GROWTH_ROWS)
        interleaved(loops, torch.device(args.device), width, rounds, block)
        bare = loops["bare"].cost()
        ratios = " | ".join(f"{loops[n].cost() / bare:.3f}x" for n in names)
        print(f"| {depth} x {width} | {bare * 1e3:.1f} | {rounds} x {block} | {ratios} |")
    print(f"load average {load()} after")


def rss_mb() -> float:
    """Resident set size now (Linux /proc), NaN elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def streaming_memory(args: argparse.Namespace, tmp: Path) -> None:
    """RSS growth and bytes per value of a long run streamed into a MetricsWriter."""
    torch.set_num_threads(1)  # a memory figure: one thread is fastest for a 4 x 32 MLP
    torch.manual_seed(0)
    model = mlp(4, 32)
    x, y = torch.randn(32, 32), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    metrics_dir = tmp / "stream"
    warmup = 500
    with MetricsWriter(metrics_dir) as writer, GradientProbe(model, sink=writer) as probe:
        start = time.perf_counter()
        for step in range(warmup + args.rss_steps):
            if step == warmup:
                before = rss_mb()
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            probe.capture(step, loss)
            optimizer.step()
            probe.commit()
        after = rss_mb()
        seconds = time.perf_counter() - start
    values = 0
    for table in ("layers", "steps", "time"):
        frame = read_metrics(metrics_dir, table)
        keys = [c for c in ("step", "layer", "t") if c in frame.columns]
        values += int(frame.drop(columns=keys).notna().to_numpy().sum())
    size = sum(f.stat().st_size for f in metrics_dir.glob("*.parquet"))
    print(
        f"\nstreaming {args.rss_steps} probed steps (defaults) of a 4-layer MLP into a "
        f"MetricsWriter ({seconds:.0f} s): RSS growth {after - before:.1f} MB; "
        f"{size / 2**20:.2f} MB on disk, {size / values:.2f} bytes per recorded (non-NaN) value"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds (peer table)")
    parser.add_argument("--block", type=int, default=3, help="steps per round-robin block")
    parser.add_argument("--threads", default="2,1", help="torch threads, comma-separated")
    parser.add_argument("--rss-steps", type=int, default=5_000)
    parser.add_argument("--skip", default="", help="comma-separated: peers, growth, memory")
    parser.add_argument("--baseline", metavar="REV", help="also time the probe of git REV")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp, wandb_run(Path(tmp)) as wandb:
        baseline = baseline_probe(args.baseline, Path(tmp) / "src") if args.baseline else None
        if wandb is None:
            print("wandb.watch: skipped (wandb is not installed: pip install 'vgx[bench]')")
        if "memory" not in skip:  # first: the tables' freed memory would hide any growth
            streaming_memory(args, Path(tmp))
        for n in threads:
            if "peers" not in skip:
                peer_table(args, Path(tmp), wandb, n, baseline)
        for n in threads:
            if "growth" not in skip:
                growth_table(args, Path(tmp), n)


if __name__ == "__main__":
    main()
