"""The `vgx` command: a thin front end that checks input, then hands run and sweep to Hydra.

Errors the user can fix are raised as VgxError anywhere and printed here, once, as one line
with exit code 2 (`--debug` shows the traceback instead).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from vgx.sweep.plan import SweepPlan

from hydra.core.plugins import Plugins

from hydra_plugins.vgx_launchers.vgx_local import VgxLocalLauncher
from hydra_plugins.vgx_launchers.vgx_slurm import VgxSlurmLauncher
from vgx.config import CONFIG_MODULE, register_configs
from vgx.errors import EnvironmentProblem, VgxError, environment_message
from vgx.interrupts import sigterm_interrupts
from vgx.status import BUSY, FAILED, INTERRUPTED, INVALID, SKIPPED, TALLY
from vgx.store import RunDir, writable_dir
from vgx.sweep.manifest import write_manifest
from vgx.sweep.names import identity_name, safe_name
from vgx.sweep.progress import (
    SweepProgress,
    new_invocation,
    read_progress,
    record_progress,
    record_steps,
)

RUNS_ROOT = Path("outputs/runs")
EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
# Hydra flags that print or complete instead of running: never add --multirun to them.
HYDRA_NO_RUN_FLAGS = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}
HYDRA_NO_RUN_FLAGS |= {"--shell-completion", "-sc", "--version"}
HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn"}
HYDRA_VALUE_FLAGS |= {"--config-path", "-cp", "--config-dir", "-cd"}
VGX_FLAGS = {
    "--no-report": "run, sweep: do not write the report when the run or sweep ends",
    "--redo": "rerun every run, also those already finished with the same config",
    "--debug": "show tracebacks instead of one-line errors",
    "--detach": "sweep: the front end leaves the terminal (new session, log and pid in the sweep "
    "directory; `vgx status DIR` says whether it is alive)",
    "--allow-unsafe-overrides": "accept overrides that run code (_target_, hydra.callbacks) or "
    "write outside the sweep directory (see README, Security)",
}

# The tally word of each job this process ran (`vgx run` reads its one job's word here).
JOB_WORDS: list[str] = []

register_configs()
# Hydra's plugin scan misses editable installs
Plugins.instance().register(VgxLocalLauncher)
Plugins.instance().register(VgxSlurmLauncher)
# A log line that cannot be written (disk full) must not print a traceback of its own: the run's
# status.json and the tally say what happened.
logging.raiseExceptions = False
OmegaConf.register_new_resolver("vgx_subdir", safe_name, replace=True)


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
def hydra_task(cfg: DictConfig) -> str:
    """One Hydra job: run (or reuse) the config in Hydra's output directory, log the outcome."""
    from vgx.train import execute  # torch loads in the job, not for `vgx --help`

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_dir = Path(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    on_step = partial(record_steps, sweep_dir, run_dir.name) if sweep_dir else None
    try:
        status, word = execute(
            cfg, run_dir, redo=os.environ.get("VGX_REDO") == "1", on_step=on_step
        )
    except KeyboardInterrupt:
        if sweep_dir:
            record_progress(sweep_dir, run_dir.name, INTERRUPTED)
        raise
    if sweep_dir:
        record_progress(sweep_dir, run_dir.name, word)
    JOB_WORDS.append(word)
    return status


def split_args(args: list[str]) -> tuple[list[str], list[str], set[str]]:
    """(Hydra arguments, key=value overrides among them, vgx's own flags)."""
    hydra_args, overrides, flags = [], [], set()
    takes_value = False
    for arg in args:
        if takes_value:
            hydra_args.append(arg)
            takes_value = False
        elif arg in VGX_FLAGS:
            flags.add(arg)
        else:
            hydra_args.append(arg)
            takes_value = arg in HYDRA_VALUE_FLAGS
            if not arg.startswith("-"):
                overrides.append(arg)
    return hydra_args, overrides, flags


def value_of(overrides: list[str], key: str) -> str | None:
    """The last value given for `key` on the command line."""
    found = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key]
    return found[-1].strip("'\"") if found else None


def check_safety(overrides: list[str], flags: set[str]) -> None:
    from vgx.safety import ALLOW_FLAG, check_safe

    if ALLOW_FLAG not in flags:
        check_safe(overrides)


def call_hydra(args: list[str]) -> None:
    """Run Hydra's main with `args` as its command line."""
    saved = sys.argv
    sys.argv = ["vgx", *args]
    try:
        hydra_task()
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()


def cmd_run(args: list[str]) -> int:
    """One run into outputs/runs/<its overrides>/ (or hydra.run.dir=...); again: resume."""
    from vgx.validate import check_overrides, parse_overrides

    hydra_args, overrides, flags = split_args(args)
    check_safety(overrides, flags)
    check_overrides(overrides)
    parsed = parse_overrides(overrides)
    swept = [o.input_line for o in parsed if o.is_sweep_override()]
    if swept:
        raise VgxError(f"{swept[0]} is a sweep; vgx run takes one value per key (use vgx sweep)")
    if not set(hydra_args) & HYDRA_NO_RUN_FLAGS:
        check_combination(overrides)
    run_dir = value_of(overrides, "hydra.run.dir")
    if run_dir is None:  # named by its overrides, so that the same command finds it again
        run_dir = str(RUNS_ROOT / identity_name(parsed, sep=","))
        hydra_args.insert(0, f"hydra.run.dir='{run_dir}'")  # before flags: Hydra's argparse
    if "--redo" in flags:
        os.environ["VGX_REDO"] = "1"
    run = RunDir(Path(run_dir))
    before = run.read_status() if run.exists() else None
    no_run = bool(set(hydra_args) & HYDRA_NO_RUN_FLAGS)
    if not no_run:
        writable_dir(Path(run_dir), "hydra.run.dir")
    JOB_WORDS.clear()
    call_hydra(hydra_args)
    if JOB_WORDS == [BUSY]:
        raise EnvironmentProblem(f"{run.path} is busy: another live vgx process is training it")
    if not run.exists() or no_run:
        return 0  # --cfg, --info and friends print and do not run
    status = run.read_status()
    if status == before:
        print(
            f"{SKIPPED}: {run.path} is already {status['status']} with this config "
            "(--redo runs it again)"
        )
    else:
        message = f" — {status['message']}" if status.get("message") else ""
        print(f"{status['status']}: {run.path}{message}")
    if status["status"] == INVALID:
        return EXIT_USAGE
    if "--no-report" not in flags:
        write_report(run.path)
    return EXIT_FAILED if status["status"] == FAILED else 0


def check_combination(overrides: list[str]) -> None:
    """Compose the run's config as Hydra will and check it whole, before anything is written."""
    from vgx.sweep.plan import compose_config
    from vgx.train import check_run

    check_run(compose_config([o for o in overrides if not o.startswith("hydra")]))


def cmd_sweep(args: list[str]) -> int:
    """Hydra multirun over the Cartesian product, then the tally and the report."""
    from vgx.launch.processes import stop_descendants
    from vgx.sweep.plan import plan_sweep, sweep_jobs
    from vgx.validate import expand_globs

    hydra_args, overrides, flags = split_args(args)
    check_safety(overrides, flags)
    expanded = dict(zip(overrides, expand_globs(overrides), strict=True))
    hydra_args = [expanded.get(arg, arg) for arg in hydra_args]
    overrides = list(expanded.values())
    plan = plan_sweep(overrides)
    if plan.total == 0:
        raise VgxError("the sweep would start 0 runs; give every swept key at least one value")
    if {"--cfg", "-c"} & set(hydra_args):
        print_configs(hydra_args, overrides)
        return 0
    if set(hydra_args) & HYDRA_NO_RUN_FLAGS:
        call_hydra(hydra_args)
        return 0
    sweep_dir = Path(value_of(overrides, "hydra.sweep.dir") or plan.default_dir)
    ours = list(plan.extra_overrides)  # first, so that the user's own overrides win
    if value_of(overrides, "hydra.sweep.dir") is None:  # quoted: the name holds = and ,
        ours.append(f"hydra.sweep.dir='{sweep_dir}'")
    if not {"-m", "--multirun"} & set(hydra_args):
        ours.insert(0, "--multirun")
    hydra_args = [*ours, *hydra_args]
    os.environ["VGX_PARALLEL_JOBS"] = str(plan.parallel_jobs)
    if "--redo" in flags:
        os.environ["VGX_REDO"] = "1"
    writable_dir(sweep_dir, "hydra.sweep.dir")
    if "--detach" in flags:
        return detach_sweep(sweep_dir, [a for a in args if a != "--detach"])
    try:
        write_manifest(sweep_dir, overrides, sweep_jobs(overrides))
    except OSError as err:
        raise EnvironmentProblem(f"cannot write the manifest of {sweep_dir}: {err}") from None
    invocation = new_invocation()
    print(f"sweep: {plan.total} runs into {sweep_dir} ({plan.launcher} launcher)", file=sys.stderr)
    with local_pool(plan), SweepProgress(sweep_dir, plan.total, invocation):
        try:
            call_hydra(hydra_args)
        except KeyboardInterrupt:
            stop_descendants()  # a launcher vgx does not own leaves its jobs running
            raise
    counts = read_progress(sweep_dir, invocation)
    unrecorded = plan.total - sum(counts.values())  # a job that could not even log (disk full)
    lost = f", {unrecorded} not recorded" if unrecorded > 0 else ""
    print(f"sweep {sweep_dir}: " + ", ".join(f"{counts[s]} {s}" for s in TALLY) + lost)
    if "--no-report" not in flags:
        write_report(sweep_dir)
    return EXIT_FAILED if counts[FAILED] or unrecorded > 0 else 0


def detach_sweep(sweep_dir: Path, args: list[str]) -> int:
    """Start the same sweep as a detached front end and say where to watch it."""
    from vgx.sweep.detach import detach

    record = detach(sweep_dir, args)
    print(
        f"sweep detached: pid {record['pid']}, output in {record['log']}\n"
        f"watch it with: vgx status {sweep_dir}"
    )
    return 0


def local_pool(plan: SweepPlan) -> AbstractContextManager[object]:
    """vgx_local's workers, started before the progress bar's threads so that they are forked
    with the imports the front end already holds (a fresh interpreter per worker costs seconds)."""
    from vgx.launch.local import PRELOAD
    from vgx.launch.pool import prestarted

    return (
        prestarted(plan.parallel_jobs, PRELOAD) if plan.launcher == "vgx_local" else nullcontext()
    )


def print_configs(hydra_args: list[str], overrides: list[str]) -> None:
    """`vgx sweep --cfg job ...`: the config of every run the sweep would start, one by one,
    including the values an experiment file sweeps."""
    from vgx.sweep.plan import sweep_jobs

    flags = [arg for arg in hydra_args if arg not in overrides]
    # a job's overrides are the run's own; Hydra's (launcher, sweep dir) apply to every job
    hydra_own = [o for o in overrides if o.lstrip("+~").startswith(("hydra/", "hydra."))]
    jobs = sweep_jobs(overrides)
    for number, (job, _) in enumerate(jobs, 1):
        varied = [o for o in job if o not in overrides]
        print(f"# run {number}/{len(jobs)}: {' '.join(varied) or 'the defaults'}")
        call_hydra([*flags, *hydra_own, *job])


def write_report(sweep_dir: Path) -> None:
    from vgx.sweep import end  # pandas and matplotlib load for a report only

    end.write_report(sweep_dir)


def cmd_report(args: list[str]) -> int:
    """(Re)build tables and plots of a sweep or run directory from whatever runs exist."""
    write_report(_one_directory("report", args))
    return 0


def cmd_diagnose(args: list[str]) -> int:
    """Which layers vanish or explode, and the remedies that fit (ranked by the sweep itself)."""
    from vgx.diagnosis import main_text

    path = _one_directory("diagnose", args)
    if not path.is_dir():
        raise VgxError(f"no such directory: {path}")
    print(main_text(path))
    return 0


def cmd_export(args: list[str]) -> int:
    """Convert finished runs' Parquet metrics to another tool's format (TensorBoard events)."""
    from vgx.tensorboard import export_tensorboard

    if "--tensorboard" not in args:
        raise VgxError("vgx export needs a format; valid: --tensorboard")
    sweep_dir = _one_directory("export", [a for a in args if a != "--tensorboard"])
    if not sweep_dir.is_dir():
        raise VgxError(f"no such directory: {sweep_dir}")
    written = export_tensorboard(sweep_dir)
    print(
        f"wrote TensorBoard events for {len(written)} runs; view: tensorboard --logdir {sweep_dir}"
    )
    return 0


def _one_directory(command: str, args: list[str]) -> Path:
    dirs = [a for a in args if not a.startswith("-")]
    if len(dirs) != 1:
        raise VgxError(f"vgx {command} takes one directory: vgx {command} DIR")
    return Path(dirs[0])


def cmd_compare(args: list[str]) -> int:
    """Tables and plots across sweeps, aligned on the config keys they share."""
    from vgx.report import compare

    dirs, out = [], None
    items = iter(args)
    for arg in items:
        if arg in ("--out", "-o"):
            out = next(items, None)
            if out is None:
                raise VgxError("--out needs a directory: vgx compare DIR DIR --out OUT_DIR")
        elif not arg.startswith("-"):
            dirs.append(Path(arg))
    if len(dirs) < 2:
        raise VgxError("vgx compare needs at least two sweep directories: vgx compare DIR DIR ...")
    compare(dirs, Path(out) if out else Path("outputs/compare") / "_vs_".join(d.name for d in dirs))
    return 0


def cmd_status(args: list[str]) -> int:
    """How far a sweep is, from its files: counts, slowest and failed runs, jobs, front end."""
    from vgx.sweep.status_view import collect, render

    print(render(collect(_one_directory("status", args))))
    return 0


def cmd_list(args: list[str]) -> int:
    """Print the valid choices of every key, and the numeric keys with their defaults."""
    from vgx.validate import BOUNDS, KEY_NOTES, choices, known_keys

    print("Choices (KEY=VALUE; sweep with KEY=A,B,C):")
    for key, registry in choices().items():
        names = ", ".join(registry) or "(none)"
        note = f"  ({KEY_NOTES[key]})" if key in KEY_NOTES else ""
        print(f"  {key:<15} {names}{note}")
    from vgx.models import ACTIVATIONS

    print("\ninit=auto (the default) gives each act the init it was designed with:")
    for name, activation in ACTIVATIONS.items():
        print(f"  {name:<15} {activation.why}")
    print("  (model=rnn, lstm, gru: PyTorch's own; transformer: Glorot uniform)")
    print("\nNumbers (sweep with KEY=A,B,C or KEY=range(START,STOP,STEP)):")
    for key in known_keys():
        if key in BOUNDS:
            low, inclusive = BOUNDS[key]
            note = f"  ({KEY_NOTES[key]})" if key in KEY_NOTES else ""
            print(f"  {key:<18} {'≥' if inclusive else '>'} {low}{note}")
    return 0


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str, str]] = {
    "run": (cmd_run, "vgx run [KEY=VALUE ...]", "train one model"),
    "sweep": (cmd_sweep, "vgx sweep [KEY=A,B,C ...]", "one run per combination, then the report"),
    "report": (cmd_report, "vgx report DIR", "rebuild tables and plots of a sweep or run"),
    "compare": (
        cmd_compare,
        "vgx compare DIR DIR ... [--out DIR]",
        "tables and plots across sweeps",
    ),
    "status": (cmd_status, "vgx status DIR", "how far a sweep is (from its files, any shell)"),
    "diagnose": (cmd_diagnose, "vgx diagnose DIR", "vanishing/exploding layers and remedies"),
    "export": (cmd_export, "vgx export --tensorboard DIR", "runs' metrics as TensorBoard events"),
    "list": (cmd_list, "vgx list", "valid choices for every key"),
}


def usage() -> str:
    lines = ["usage: vgx COMMAND [ARGS ...]", "", "vanishing-gradient explorer: commands:"]
    lines += [f"  {use:<40} {what}" for use, what in ((u, w) for _, u, w in COMMANDS.values())]
    lines += ["", "flags:"] + [f"  {flag:<40} {what}" for flag, what in VGX_FLAGS.items()]
    lines += ["", "`vgx COMMAND --help` for a command; `vgx list` for keys and choices."]
    return "\n".join(lines)


COMMAND_HELP = {
    "run": "Keys as typed: depth=10 act=sigmoid init=he_normal (see `vgx list`). Hydra flags pass "
    "through: --cfg job prints the composed config, hydra.run.dir=DIR sets the run directory "
    "(default: outputs/runs/<the run's overrides>). Running the same command again resumes: a "
    "run already done with the same config is skipped, an interrupted or failed one is redone.",
    "sweep": "Hydra sweep syntax: act=sigmoid,relu depth=range(2,10,2); +experiment=NAME runs a "
    "canned sweep; jobs run in parallel on vgx's own pool (hydra.launcher.workers=N; "
    "hydra/launcher=basic runs them one by one); hydra.sweep.dir=DIR picks the "
    "directory (default: outputs/sweeps/<the sweep's overrides>). Running the same command again "
    "resumes: runs already done with the same config are skipped, failed and interrupted runs "
    "are redone (--redo reruns all). Exit code 1 when any run failed.",
    "report": "Writes DIR/report/ (DIR: a sweep or a single run's directory): summary.csv, "
    "layers.csv, PNG plots and index.html, then prints the verdict table.",
    "compare": "Writes OUT_DIR (default outputs/compare/A_vs_B): the tables with a `sweep` column "
    "and side-by-side plots.",
    "status": "Counts of done, running, failed, diverged, invalid, interrupted and pending runs "
    "(pending: in the sweep's manifest, not started), the slowest runs, the runs not done with "
    "their messages, the SLURM jobs that ran them, and whether a detached front end (vgx sweep "
    "--detach) is alive. Reads only the files, so it works from any shell while the sweep runs.",
    "diagnose": "DIR is a run or a sweep directory. For each run: layers whose back-propagated "
    "gradient is more than 2 decades below (vanishing) or above (exploding) the output layer's, "
    "at init and at the end, saturated and dead units, and the remedies from the literature "
    "that fit; when the sweep varied a remedy key (act, init, norm, skip, model, clip), the "
    "remedies are ranked by what the sweep measured.",
    "export": "Writes RUN_DIR/tensorboard/ event files (per-layer scalars and histograms) for "
    "every run below DIR from its Parquet metrics; needs `pip install vgx[tensorboard]`. Runs with "
    "logger=tensorboard write them live instead.",
    "list": "Every key that takes a name, with its valid names, and the numeric keys' ranges.",
}


def dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        raise VgxError(f"unknown command '{name}'; valid: {', '.join(COMMANDS)}")
    handler, use, what = COMMANDS[name]
    if args[:1] in (["-h"], ["--help"]):
        print(f"usage: {use}\n\n{what}.\n\n{textwrap.fill(COMMAND_HELP[name], 88)}")
        return 0
    return handler(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vgx` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_interrupts():
            return dispatch(argv)
    except VgxError as err:
        if "--debug" in argv:
            raise
        print(f"vgx: error: {err}", file=sys.stderr)
        return EXIT_FAILED if isinstance(err, EnvironmentProblem) else EXIT_USAGE
    except KeyboardInterrupt:
        print("vgx: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vgx list | head -1`: the reader left; stop writing, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("vgx: error: output closed early (broken pipe)", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # disk full, read-only, a file in place of a directory
        if "--debug" in argv:
            raise
        print(f"vgx: error: {environment_message(err)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
