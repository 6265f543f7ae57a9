"""What GradientProbe costs per training step, measured side by side with the bare loop.

Configurations run interleaved in one process (round-robin blocks of steps), so machine noise
hits all of them alike; each reports its median step time and its ratio to the bare loop. Then
the memory and disk cost of streaming a long run into a MetricsWriter. Prints; asserts nothing.

`--baseline REV` adds the probe as of git revision REV (e.g. `main`) to the same interleaved
loop and to the streaming measurement: before/after side by side in one process.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vgx.probe import GradientProbe
from vgx.store import MetricsWriter, read_metrics


def mlp(depth: int, width: int, n_in: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, width), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


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


def naive_norms(model: nn.Module) -> list[float]:
    """What the probe replaces: one host sync per parameter."""
    return [p.grad.norm().item() for p in model.parameters() if p.grad is not None]


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

    def run(self, x: torch.Tensor, y: torch.Tensor, steps: int, keep: bool) -> None:
        for _ in range(steps):
            sync(x.device)
            start = time.perf_counter()
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
            self.step += 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(args: argparse.Namespace, sink_dir: Path, baseline: type | None) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = mlp(args.depth, args.width, args.width, 10).to(device)
    x = torch.randn(args.batch, args.width, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    writers = {name: MetricsWriter(sink_dir / name) for name in ("w", "all", "w0", "all0")}
    only_weights = {"activations": False, "updates": False, "time": False}
    loops = {
        "bare": Loop(model),
        "weights only": Loop(model, lambda m: GradientProbe(m, sink=writers["w"], **only_weights)),
        "all metrics": Loop(model, lambda m: GradientProbe(m, sink=writers["all"])),
        "naive .item()": Loop(model, after_backward=naive_norms),
    }
    if baseline is not None:
        loops["weights (base)"] = Loop(
            model, lambda m: baseline(m, sink=writers["w0"], **only_weights)
        )
        loops["all (base)"] = Loop(model, lambda m: baseline(m, sink=writers["all0"]))
    blocks = max(args.steps // args.block, 1)
    for block in range(blocks + 1):  # block 0 warms up (allocator, caches) and is not timed
        for loop in loops.values():
            loop.run(x, y, args.block, keep=block > 0)
    print(
        f"MLP depth {args.depth}, width {args.width}, batch {args.batch}, {args.device}, "
        f"{torch.get_num_threads()} threads; {blocks} blocks of {args.block} steps each"
    )
    # The minimum is printed too: on a shared machine it is the figure least touched by noise.
    print(f"{'configuration':<16}{'median ms':>11}{'× bare':>8}{'min ms':>10}{'× bare':>8}")
    bare = loops["bare"].times
    for name, loop in loops.items():
        median, least = statistics.median(loop.times), min(loop.times)
        print(
            f"{name:<16}{median * 1e3:>11.2f}{median / statistics.median(bare):>8.3f}"
            f"{least * 1e3:>10.2f}{least / min(bare):>8.3f}"
        )
    for writer in writers.values():
        writer.close()


def rss_mb() -> float:
    """Resident set size now (Linux /proc), NaN elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def streaming_memory(args: argparse.Namespace, sink_dir: Path, make: type, label: str) -> None:
    torch.manual_seed(0)
    model = mlp(4, 32, 16, 4)
    x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    metrics_dir = sink_dir / f"stream-{label}"
    warmup = 500
    with MetricsWriter(metrics_dir) as writer, make(model, sink=writer) as probe:
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
        values += frame.drop(columns=keys).size
    size = sum(f.stat().st_size for f in metrics_dir.glob("*.parquet"))
    print(
        f"\n{label}: streaming {args.rss_steps} probed steps of a 4-layer MLP into a MetricsWriter "
        f"({seconds:.0f} s): RSS growth {after - before:.1f} MB; "
        f"{size / 2**20:.2f} MB on disk, {size / values:.2f} bytes per recorded value"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    parser.add_argument("--block", type=int, default=10, help="steps per round-robin block")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rss-steps", type=int, default=20_000)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--baseline", metavar="REV", help="also time the probe of git REV")
    args = parser.parse_args()
    if args.threads:  # vgx sweeps run one thread per parallel job
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = baseline_probe(args.baseline, Path(tmp)) if args.baseline else None
        step_times(args, Path(tmp), baseline)
        streaming_memory(args, Path(tmp), GradientProbe, "this tree")
        if baseline is not None:
            streaming_memory(args, Path(tmp), baseline, args.baseline)


if __name__ == "__main__":
    main()
