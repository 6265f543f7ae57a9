"""Benchmark `build_report` on synthetic sweeps (runs × 50 layers × 1,000 steps); prints figures.

Generates run directories with the store's MetricsWriter (default 20,000-row chunks, as the
training loop writes them), then times `build_report` in a child process and reads its peak
memory with getrusage accounting (wait4). Targets: 1,000 runs in ≤ 60 s and ≤ 4 GB. Asserts nothing.

    python scripts/bench_report.py                 # 100 and 1,000 runs
    python scripts/bench_report.py --runs 50       # a quick check
    python scripts/bench_report.py --schema 1      # runs as written before schema version 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from vgx.schema import SCHEMA_VERSION
from vgx.status import DONE
from vgx.store import MetricsWriter, RunDir, atomic_write_json, atomic_write_text

ACTS = ("sigmoid", "tanh", "relu", "gelu")
INITS = ("default", "xavier", "kaiming", "orthogonal", "normal")
LRS = (0.001, 0.01, 0.03, 0.1, 0.3)
BLOCK = 20  # steps appended at once (the probe appends every step; chunks come out the same)

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from vgx.report import build_report
t1 = time.perf_counter()
report = build_report(sys.argv[1], sys.argv[2], echo=False)
t2 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0, "report_s": t2 - t1, "rows": len(report.summary),
    "layer_rows": len(report.layers), "files": len(report.paths),
    "main_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def plan(runs: int) -> list[dict[str, object]]:
    """Sweep points: act × init × lr (100 combinations), then seeds."""
    grid = itertools.product(range(runs // 100 + 1), ACTS, INITS, LRS)
    return [
        {"seed": seed, "act": act, "init": init, "lr": lr}
        for seed, act, init, lr in itertools.islice(grid, runs)
    ]


# the magnitudes' dtype per schema version (docs/run-directory.md)
MAGNITUDES = {1: np.float32, 2: np.float64}


def zeros(rng: np.random.Generator, size: int, real: type, schema: int) -> dict[str, np.ndarray]:
    """The zero-fraction columns as the schema version named them (version 1: `dead`)."""
    fraction = rng.uniform(0, 0.1, size).astype(real)
    if schema == 1:
        return {"dead": fraction}
    return {"zero_fraction": fraction, "dead_units": rng.uniform(0, 0.01, size).astype(real)}


def write_run(job: tuple[Path, dict[str, object], int, int, int]) -> None:
    """One synthetic run: decades of vanishing that depend on act and init, noisy over steps."""
    root, keys, layers, steps, schema = job
    real = MAGNITUDES[schema]
    name = ",".join(f"{k}={v}" for k, v in keys.items())
    run = RunDir(root / name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    config = {
        "model": {"name": "mlp"},
        "data": {"name": "digits"},
        "depth": layers,
        "width": 64,
        "steps": steps,
        **keys,
    }
    atomic_write_text(run.config, yaml.safe_dump(config))
    run.write_status(DONE, config_hash="0" * 16, step=steps)
    if schema == 1:  # version 1 recorded no schema_version
        record = run.read_status()
        del record["schema_version"]
        atomic_write_json(run.status_file, record)
    table = pd.DataFrame(
        {"layer": range(layers), "name": [f"blocks.{i}.linear" for i in range(layers)]}
    ).assign(kind="linear", params=4096, fan_in=64, fan_out=64)
    atomic_write_text(run.layers_file, table.to_csv(index=False))
    slope = {"sigmoid": 0.6, "tanh": 0.25, "relu": 0.05, "gelu": 0.1}[str(keys["act"])]
    profile = 10.0 ** (-slope * (layers - 1 - np.arange(layers)))
    layer_ids = np.tile(np.arange(layers, dtype=np.int32), BLOCK)
    with MetricsWriter(run.metrics_dir) as writer:
        for start in range(0, steps, BLOCK):
            step = np.repeat(np.arange(start, start + BLOCK, dtype=np.int64), layers)
            grad = np.tile(profile, BLOCK) * rng.lognormal(0, 0.3, step.size)
            values = grad.astype(real)
            writer.append(
                "layers",
                {
                    "step": step,
                    "layer": layer_ids,
                    "grad_norm": values,
                    "grad_rms": values / 64,
                    "act_grad_norm": values * 2,
                    "weight_norm": np.full(step.size, 8.0, real),
                    "update_ratio": values * 0.01,
                    "act_mean": rng.normal(0, 0.1, step.size).astype(real),
                    "act_std": np.ones(step.size, real),
                    "saturated": rng.uniform(0, 0.2, step.size).astype(real),
                    **zeros(rng, step.size, real, schema),
                    "nonfinite": np.zeros(step.size, np.int64),
                },
            )
            s = np.arange(start, start + BLOCK)
            loss = 2.3 * np.exp(-s / steps * 3) + rng.uniform(0, 0.05, BLOCK)
            writer.append(
                "steps",
                {"step": s, "loss": loss, "grad_total_norm": loss, "nonfinite": 0 * s},
            )
        evals = np.arange(0, steps + 1, steps // 10)
        writer.append(
            "evals",
            {"step": evals, "loss": 2.3 * np.exp(-evals / steps * 3), "accuracy": evals / steps},
        )
    run.write_summary({"wall_time_s": 10.0, "steps_per_s": steps / 10.0, "steps_done": steps})


def generate(root: Path, runs: int, layers: int, steps: int, schema: int) -> float:
    """Write the sweep (skipping runs already there); return seconds taken."""
    started = time.perf_counter()
    jobs = [(root, keys, layers, steps, schema) for keys in plan(runs)]
    todo = [j for j in jobs if not (root / ",".join(f"{k}={v}" for k, v in j[1].items())).exists()]
    with Pool(os.cpu_count()) as pool:
        pool.map(write_run, todo, chunksize=4)
    return time.perf_counter() - started


def measure(sweep: Path, out: Path) -> dict[str, float]:
    """build_report in a fresh process: wall time, and its peak RSS from wait4's rusage (the
    child's own RUSAGE_CHILDREN accounting, so its worker processes count too)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(sweep), str(out)], stdout=subprocess.PIPE, text=True
    )
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"build_report failed with exit code {child.returncode}")
    figures = json.loads(output.strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime  # the child's and its worker processes' CPU time
    figures.update(wall_s=wall, cpu_s=cpu, child_peak_rss_mb=usage.ru_maxrss / 1024)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dir", type=Path, help="keep generated runs here (reused if present)")
    parser.add_argument("--schema", type=int, choices=sorted(MAGNITUDES), default=SCHEMA_VERSION)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vgx-bench-report-") as tmp:
        base = args.dir or Path(tmp)
        results = []
        for runs in sorted(args.runs):
            sweep = base / f"sweep-{runs}x{args.layers}x{args.steps}-v{args.schema}"
            gen = generate(sweep, runs, args.layers, args.steps, args.schema)
            size = sum(f.stat().st_size for f in sweep.rglob("*.parquet")) / 2**20
            print(
                f"generated {runs} runs × {args.layers} layers × {args.steps} steps "
                f"({runs * args.layers * args.steps:,} layer rows, {size:,.0f} MB Parquet, "
                f"schema version {args.schema}) "
                f"in {gen:.1f} s",
                flush=True,
            )
            load = os.getloadavg()[0]
            figures = measure(sweep, base / f"report-{runs}")
            results.append((runs, figures))
            print(
                f"build_report {runs:>5} runs: {figures['wall_s']:6.1f} s wall "
                f"({figures['report_s']:.1f} s report + {figures['import_s']:.1f} s import; "
                f"{figures['cpu_s']:.1f} s CPU incl. workers; load average {load:.1f} "
                f"on {os.cpu_count()} cores), "
                f"peak RSS {figures['child_peak_rss_mb']:,.0f} MB "
                f"(main {figures['main_rss_mb']:,.0f} MB, largest worker "
                f"{figures['worker_rss_mb']:,.0f} MB), "
                f"{figures['layer_rows']:,} layers.csv rows, {figures['files']} files",
                flush=True,
            )
        for (n0, f0), (n1, f1) in itertools.pairwise(results):
            print(
                f"growth {n0} → {n1} runs (×{n1 / n0:g}): wall ×{f1['wall_s'] / f0['wall_s']:.2f}, "
                f"CPU ×{f1['cpu_s'] / f0['cpu_s']:.2f}, "
                f"peak RSS ×{f1['child_peak_rss_mb'] / f0['child_peak_rss_mb']:.2f}"
            )
        print("targets for 1,000 runs: ≤ 60 s, ≤ 4,096 MB peak RSS")


if __name__ == "__main__":
    main()
