"""Attack tiny sweeps the way nights go wrong, then check every run was done exactly once.

    python scripts/stress_overnight.py --rounds 20

Each round runs three scenarios, each in its own sweep directory under a temporary directory:

- kill: SIGKILL of the whole process tree at a random moment, then the same command again;
- concurrent: the same command started twice at once (a cron job and a person);
- dead worker: kill -9 of one worker process of a parallel sweep, then the same command again.

A scenario ends with the same command re-run until every run of the sweep's manifest is done
(a run still owned by a live process is waited for). Then every run must be `done` with its
steps 0..steps-1 exactly once in its Parquet tables, and every file must be readable. The last
line is the one the overnight issue asks for:

    runs done exactly once: k/k, unreadable files: 0, duplicate steps: 0

Slow by design (each vgx start imports torch); run it on an idle box for timings that mean
anything. Exit code 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from vgx.launch.processes import descendants

VGX = str(Path(sys.executable).with_name("vgx"))
RESUMES = 8  # re-runs allowed for a scenario to finish (a killed sweep needs one)


@dataclass
class Tally:
    runs: int = 0
    done_once: int = 0
    unreadable: int = 0
    duplicates: int = 0

    def add(self, other: Tally) -> None:
        self.runs += other.runs
        self.done_once += other.done_once
        self.unreadable += other.unreadable
        self.duplicates += other.duplicates

    def line(self) -> str:
        return (
            f"runs done exactly once: {self.done_once}/{self.runs}, "
            f"unreadable files: {self.unreadable}, duplicate steps: {self.duplicates}"
        )


def sweep_args(sweep_dir: Path, runs: int, steps: int) -> list[str]:
    seeds = ",".join(str(s) for s in range(runs))
    return [
        "sweep",
        f"seed={seeds}",
        f"steps={steps}",
        "width=8",
        "threads=1",
        "progress=false",
        "probe.chunk_rows=20",
        f"hydra.sweep.dir={sweep_dir}",
        "--no-report",
    ]


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """vgx in its own session, so its whole tree can be signalled as one group."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [VGX, *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def manifest_runs(sweep_dir: Path) -> list[Path]:
    data = json.loads((sweep_dir / "manifest.json").read_text())
    return [sweep_dir / run["dir"] for run in data["runs"]]


def all_done(sweep_dir: Path) -> bool:
    if not (sweep_dir / "manifest.json").exists():
        return False
    for run in manifest_runs(sweep_dir):
        try:
            if json.loads((run / "status.json").read_text())["status"] != "done":
                return False
        except (OSError, ValueError, KeyError):
            return False
    return True


def resume(args: list[str], sweep_dir: Path, cwd: Path) -> None:
    """The same command again until every run is done (waiting for runs busy elsewhere)."""
    for _ in range(RESUMES):
        if all_done(sweep_dir):
            return
        finish(start(args, cwd))
        if not all_done(sweep_dir):
            time.sleep(2.0)


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def any_running(sweep_dir: Path) -> bool:
    for status in sweep_dir.glob("*/status.json"):
        try:
            if json.loads(status.read_text())["status"] == "running":
                return True
        except (OSError, ValueError, KeyError):
            continue
    return False


def scenario_kill(root: Path, rng: random.Random, runs: int, steps: int) -> Path:
    sweep_dir = root / "kill"
    args = sweep_args(sweep_dir, runs, steps)
    process = start(args, root)
    time.sleep(rng.uniform(1.0, 25.0))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    resume(args, sweep_dir, root)
    return sweep_dir


def scenario_concurrent(root: Path, rng: random.Random, runs: int, steps: int) -> Path:
    sweep_dir = root / "concurrent"
    args = sweep_args(sweep_dir, runs, steps)
    first, second = start(args, root), start(args, root)
    finish(first)
    finish(second)
    resume(args, sweep_dir, root)
    return sweep_dir


def scenario_dead_worker(root: Path, rng: random.Random, runs: int, steps: int) -> Path:
    sweep_dir = root / "dead-worker"
    args = sweep_args(sweep_dir, runs, steps)
    process = start(args, root)
    if wait_until(lambda: any_running(sweep_dir), timeout=300):
        time.sleep(rng.uniform(0.0, 3.0))
        workers = [p for p in sorted(descendants(process.pid)) if "tracker" not in cmdline(p)]
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)
    finish(process)
    resume(args, sweep_dir, root)
    return sweep_dir


SCENARIOS = {
    "kill": scenario_kill,
    "concurrent": scenario_concurrent,
    "dead worker": scenario_dead_worker,
}


def check(sweep_dir: Path, runs: int, steps: int) -> Tally:
    """Each of the `runs` runs done with steps 0..steps-1 once; every file below readable."""
    tally = Tally(runs=runs)
    listed = manifest_runs(sweep_dir) if (sweep_dir / "manifest.json").exists() else []
    for run in listed:
        try:
            status = json.loads((run / "status.json").read_text())["status"]
            step_col = columns(run, "steps", ["step"])["step"]
            layer_rows = columns(run, "layers", ["step", "layer"])
        except (OSError, ValueError, KeyError):
            continue
        duplicates = int(step_col.duplicated().sum() + layer_rows.duplicated().sum())
        tally.duplicates += duplicates
        if status == "done" and not duplicates and sorted(step_col) == list(range(steps)):
            tally.done_once += 1
    tally.unreadable = sum(not readable(p) for p in sweep_dir.rglob("*") if p.is_file())
    return tally


def columns(run: Path, table: str, names: list[str]) -> pd.DataFrame:
    chunks = sorted(run.glob(f"metrics/{table}-*.parquet"))
    return pd.concat([pq.read_table(c, columns=names).to_pandas() for c in chunks])


READERS = {
    ".parquet": lambda p: pq.read_table(p),
    ".json": lambda p: json.loads(p.read_text()),
    ".yaml": lambda p: yaml.safe_load(p.read_text()),
    ".csv": lambda p: pd.read_csv(p),
}


def readable(path: Path) -> bool:
    reader = READERS.get(path.suffix)
    if reader is None:
        return True  # logs, locks: no format to check
    try:
        reader(path)
    except Exception:  # any parser's error means the file is torn
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="runs per sweep")
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random kill moments")
    parser.add_argument("--keep", type=Path, help="keep the sweeps under this directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    total = Tally()
    with tempfile.TemporaryDirectory(prefix="vgx-stress-") as scratch:
        base = args.keep or Path(scratch)
        for round_ in range(args.rounds):
            for name, scenario in SCENARIOS.items():
                root = base / f"round-{round_:02d}" / name.replace(" ", "-")
                root.mkdir(parents=True)
                started = time.monotonic()
                tally = check(scenario(root, rng, args.runs, args.steps), args.runs, args.steps)
                total.add(tally)
                took = time.monotonic() - started
                print(f"round {round_ + 1} {name}: {tally.line()} ({took:.0f} s)", file=sys.stderr)
    print(total.line())
    ok = total.runs and total.done_once == total.runs and not total.unreadable
    return 0 if ok and not total.duplicates else 1


if __name__ == "__main__":
    sys.exit(main())
