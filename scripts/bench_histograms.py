"""What per-layer histograms cost per training step, side by side with wandb.watch.

The loop and model of bench_probe.py (MLP depth 50, width 256), configurations interleaved in one
process (round-robin blocks of steps) so machine noise hits all alike; each reports its median
step time and its ratio to the bare loop and to wandb.watch(model, log="gradients", log_freq=1)
in offline mode. wandb is a benchmark-only dependency (`pip install wandb`); without it that
line is skipped. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_probe import Loop, mlp

from vgx.probe import GradientProbe
from vgx.store import MetricsWriter


@contextmanager
def wandb_watched(model: torch.nn.Module, run_dir: Path) -> Iterator[Loop | None]:
    """wandb.watch's gradient histograms every step, committed every step (offline: no network)."""
    try:
        import wandb
    except ImportError:
        print("wandb.watch: skipped (wandb is not installed: pip install wandb)")
        yield None
        return
    os.environ["WANDB_MODE"] = "offline"
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
    run = wandb.init(dir=str(run_dir), project="vgx-bench", mode="offline", settings=settings)
    try:
        loop = Loop(model, after_backward=lambda _: run.log({}))
        run.watch(loop.model, log="gradients", log_freq=1)
        yield loop
    finally:
        run.finish()


def step_times(args: argparse.Namespace, tmp: Path) -> None:
    torch.manual_seed(0)
    model = mlp(args.depth, args.width, args.width, 10)
    x = torch.randn(args.batch, args.width)
    y = torch.randint(0, 10, (args.batch,))
    writers = {n: MetricsWriter(tmp / str(n)) for n in (0, 1, 10)}  # histograms every n steps
    loops = {
        "bare": Loop(model),
        "probe": Loop(model, lambda m: GradientProbe(m, sink=writers[0])),
        "probe + hist": Loop(model, lambda m: GradientProbe(m, hist_every=1, sink=writers[1])),
        "probe + hist/10": Loop(model, lambda m: GradientProbe(m, hist_every=10, sink=writers[10])),
    }
    blocks = max(args.steps // args.block, 1)
    with wandb_watched(model, tmp / "wandb") as watched:
        if watched is not None:
            loops["wandb.watch"] = watched
        for block in range(blocks + 1):  # block 0 warms up (allocator, caches): not timed
            for loop in loops.values():
                loop.run(x, y, args.block, keep=block > 0)
    print(
        f"MLP depth {args.depth}, width {args.width}, batch {args.batch}, cpu, "
        f"{torch.get_num_threads()} threads; {blocks} blocks of {args.block} steps each; "
        f"probe: all metrics every step; hist: weight gradients, activation gradients and "
        f"activations of every layer ({args.depth * 3} histograms) every step (hist/10: every 10th)"
    )
    median = {name: statistics.median(loop.times) for name, loop in loops.items()}
    mean = {name: statistics.mean(loop.times) for name, loop in loops.items()}
    reference = "wandb.watch" if "wandb.watch" in median else None
    # The mean shows what histograms every 10th step cost on average (the median skips them).
    head = f"{'configuration':<18}{'median ms':>11}{'× bare':>8}{'× wandb':>9}"
    print(f"{head}{'mean ms':>10}{'× bare':>8}")
    for name, value in median.items():
        versus = f"{value / median[reference]:>9.3f}" if reference else f"{'-':>9}"
        print(
            f"{name:<18}{value * 1e3:>11.2f}{value / median['bare']:>8.3f}{versus}"
            f"{mean[name] * 1e3:>10.2f}{mean[name] / mean['bare']:>8.3f}"
        )
    added = (median["probe + hist"] - median["probe"]) / median["bare"]
    print(f"histograms add {added:.3f} × bare to the probe's step")
    for writer in writers.values():
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per configuration")
    parser.add_argument("--block", type=int, default=10, help="steps per round-robin block")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        step_times(args, Path(tmp))


if __name__ == "__main__":
    main()
