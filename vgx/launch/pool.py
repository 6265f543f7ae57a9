"""A process pool the front end owns: workers that take many runs and never outlive it.

Why not joblib (loky) or concurrent.futures: a loky worker killed by the OOM killer aborts the
whole sweep (TerminatedWorkerError), a `kill -9` of the front end orphans its workers (they go on
training), and a ProcessPoolExecutor marks itself broken after one dead worker. Here:

- Workers never outlive the front end. Each worker sets PR_SET_PDEATHSIG itself (SIGTERM: the
  run in flight is recorded `interrupted`) and runs a getppid watchdog thread, because the death
  signal fires when the forking *thread* exits, not the process. Both end the worker within a
  second of the front end's death; `close()` stops them on every ordinary exit.
- A worker that dies (kill -9, OOM, segfault) costs its one job: the run it claimed is marked
  `failed` with "worker died: signal 9", a fresh worker takes its place and the rest go on.
- An interrupt of the front end (Ctrl-C, SIGTERM, SIGHUP) is passed to the busy workers as
  SIGTERM; every run in flight ends `interrupted` (marked by the pool if its worker cannot say so
  within GRACE_S), then KeyboardInterrupt is raised again to the caller.
- Workers import torch and vgx once and take many jobs. They are forked while the front end is
  single-threaded and torch has no CUDA (then a worker is ready in milliseconds: it inherits the
  front end's imports), else spawned (a fresh interpreter pays the imports: seconds).

The API for packing runs (the SLURM launcher runs a pack inside each array task):

    outcomes = run_pack([Job("module:function", args), ...], workers=4, preload=("vgx.train",))

Each Job calls `function(*args)` in a worker and its Outcome holds the value, the exception it
raised, or why its worker died. A job that writes a run calls `claim(run_dir, sweep_dir)` first,
so that the pool can mark that run if the worker dies or does not stop when interrupted.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vgx.interrupts import STOP_SIGNALS, raise_terminated
from vgx.status import FAILED, INTERRUPTED, RUNNING
from vgx.store import RunDir
from vgx.sweep.progress import record_progress

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext, SpawnContext

GRACE_S = 10.0  # how long an interrupted worker may take to record its run before it is killed
WATCHDOG_S = 0.5  # how often a worker checks that its front end is still its parent
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class Job:
    """A call to make in a worker; `function` is "module:qualname" so that it pickles by name."""

    function: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Claim:
    """The run a job is writing, named by the job so the pool can mark it if the worker is lost."""

    run_dir: Path
    sweep_dir: Path | None
    since: float


@dataclass
class Outcome:
    """How one job ended: its value, the exception it raised, or why its worker died."""

    value: Any = None
    error: BaseException | None = None
    died: str | None = None
    claim: Claim | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class WorkerStart:
    """Where a worker's start-up time went (seconds): process start and imports."""

    method: str
    start_s: float
    import_s: float


def function_ref(function: Callable[..., Any]) -> str:
    """The name a worker imports a module-level function by (decorators are unwrapped there)."""
    if function.__module__ == "__main__":
        raise ValueError(f"{function.__qualname__} must live in an importable module, not __main__")
    return f"{function.__module__}:{function.__qualname__}"


def resolve(ref: str) -> Callable[..., Any]:
    module, _, qualname = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return inspect.unwrap(found)  # @hydra.main wraps the task function it is given


# ---- inside a worker ---------------------------------------------------------------------------

_conn: Connection | None = None
_job_index: int | None = None
_timings: dict[str, float] = {}


def record_time(name: str, seconds: float) -> None:
    """Add a timing to the current job's Outcome.timings (where a run's overhead goes)."""
    _timings[name] = seconds


def claim(run_dir: Path, sweep_dir: Path | None = None) -> None:
    """Tell the front end which run this job writes (a no-op outside a pool worker)."""
    if _conn is not None and _job_index is not None:
        _conn.send(("claim", _job_index, Claim(Path(run_dir), sweep_dir, time.time())))


def _die_with(parent_pid: int) -> None:
    """End this worker when its front end dies: the death signal, plus a watchdog for the cases
    it misses (it fires when the forking thread exits, and is lost if the parent died first)."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_S)
        os.kill(os.getpid(), signal.SIGTERM)  # the run in flight records `interrupted`
        time.sleep(GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="vgx-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:  # died between fork and prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(conn: Connection, parent_pid: int, preload: Sequence[str], began: float) -> None:
    global _conn, _job_index
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_terminated)
    _die_with(parent_pid)
    started = time.perf_counter()
    for module in preload:
        importlib.import_module(module)
    conn.send(("ready", time.time() - began, time.perf_counter() - started))
    _conn = conn
    while True:
        message = conn.recv()
        if message[0] == "stop":
            return
        _, _job_index, job = message
        _timings.clear()
        began_job = time.perf_counter()
        try:
            value, error = resolve(job.function)(*job.args), None
        except Exception as err:  # the job's own failure goes back to the caller
            value, error = None, err
        timings = {**_timings, "job_s": time.perf_counter() - began_job}
        try:
            conn.send(("done", _job_index, value, error, timings))
        except Exception as err:  # an unpicklable value or exception: say what it was
            conn.send(("done", _job_index, None, RuntimeError(repr(err)), timings))
        _job_index = None


def _worker(conn: Connection, parent_pid: int, preload: Sequence[str], began: float) -> None:
    """A worker's life; an interrupt ends it quietly once the front end has been told."""
    try:
        try:
            _worker_main(conn, parent_pid, preload, began)
        except (KeyboardInterrupt, EOFError, OSError):
            for signum in (signal.SIGINT, *STOP_SIGNALS):
                signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut this short
            with suppress(OSError, ValueError):
                conn.send(("interrupted", _job_index))
    except KeyboardInterrupt:  # a signal that arrived before the handlers were ignored
        pass


# ---- in the front end --------------------------------------------------------------------------


def start_method() -> str:
    """fork when it is safe (one thread; torch without CUDA), else spawn.

    A fork beside other threads can inherit a lock one of them holds (tqdm's, stderr's), and a
    CUDA build of torch may have touched the driver in the front end, which a fork cannot reuse.
    """
    torch = sys.modules.get("torch")
    cuda_built = torch is not None and getattr(torch.version, "cuda", None) is not None
    return "fork" if threading.active_count() == 1 and not cuda_built else "spawn"


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process of either start method
    conn: Connection
    method: str
    job: int | None = None


def mark_lost(claim: Claim, status: str, message: str) -> None:
    """Record a run whose worker was lost, unless the run recorded its own end since the claim."""
    run = RunDir(claim.run_dir)
    record = run.read_status() if run.exists() else {}
    if record.get("status") not in (None, RUNNING) and record.get("updated", 0) >= claim.since:
        return
    kept = {"config_hash": record["config_hash"]} if "config_hash" in record else {}
    run.write_status(status, message=message, **kept)
    if claim.sweep_dir is not None:
        record_progress(claim.sweep_dir, run.path.name, status)


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"worker died: signal {-exitcode}"
    return f"worker died: exit code {exitcode}"


class WorkerPool:
    """`workers` processes that run Jobs: start() it, run() one pack or more, close() it."""

    def __init__(
        self, workers: int, preload: Sequence[str] = (), method: str | None = None
    ) -> None:
        self.size = max(1, workers)
        self.method = method  # None: start_method() decides for each worker
        self.preload = tuple(preload)
        self.starts: list[WorkerStart] = []
        self._workers: list[_Worker] = []
        self._claims: dict[int, Claim] = {}  # job index -> the run it writes
        self._outcomes: list[Outcome | None] = []

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def start(self) -> WorkerPool:
        while len(self._workers) < self.size:
            self._spawn()
        return self

    def _spawn(self) -> None:
        method = self.method or start_method()
        # typeshed's BaseContext has no Process; every concrete context (fork, spawn) has one
        context = cast("ForkContext | SpawnContext", multiprocessing.get_context(method))
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker, args=(theirs, os.getpid(), self.preload, time.time()), name="vgx-worker"
        )
        process.start()
        theirs.close()  # so that the worker's death reads as end-of-file here
        self._workers.append(_Worker(process, ours, method))

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run every job on the workers; a lost worker costs its job only. Ctrl-C: see module."""
        self.start()
        self._outcomes = [None] * len(jobs)
        queue = deque(range(len(jobs)))
        self._claims = {}
        try:
            while queue or any(w.job is not None for w in self._workers):
                for worker in self._workers:
                    if worker.job is None and queue:
                        worker.job = queue.popleft()
                        with suppress(OSError):  # a worker that just died: its sentinel tells
                            worker.conn.send(("job", worker.job, jobs[worker.job]))
                handles = [w.conn for w in self._workers] + [
                    w.process.sentinel for w in self._workers
                ]
                ready = set(wait(handles))
                for worker in list(self._workers):
                    if worker.conn in ready or worker.process.sentinel in ready:
                        self._serve(worker)
                        if worker not in self._workers and queue:
                            self._spawn()
        except KeyboardInterrupt:
            self._interrupt()
            raise
        return [o if o is not None else Outcome() for o in self._outcomes]

    def _serve(self, worker: _Worker) -> None:
        """Read what `worker` sent; if it is gone, its job (if any) is lost."""
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            worker.process.join(GRACE_S)
        if worker.process.is_alive():
            return
        worker.process.join()
        self._workers.remove(worker)
        worker.conn.close()
        if worker.job is not None:
            reason = death_reason(worker.process.exitcode)
            claim = self._claims.pop(worker.job, None)
            self._outcomes[worker.job] = Outcome(died=reason, claim=claim)
            if claim is not None:
                mark_lost(claim, FAILED, reason)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            self.starts.append(WorkerStart(worker.method, message[1], message[2]))
        elif kind == "claim":
            self._claims[message[1]] = message[2]
        elif kind == "done":
            _, index, value, error, timings = message
            claim = self._claims.pop(index, None)
            self._outcomes[index] = Outcome(value, error, claim=claim, timings=timings)
            worker.job = None
        elif kind == "interrupted" and message[1] is not None:  # a signal to this worker only
            claim = self._claims.pop(message[1], None)
            self._outcomes[message[1]] = Outcome(died="worker interrupted", claim=claim)
            if claim is not None:
                mark_lost(claim, INTERRUPTED, "interrupted")
            worker.job = None

    def _interrupt(self) -> None:
        """Stop every worker; runs in flight end `interrupted` (by their worker, or marked)."""
        with _signals_ignored():  # the clean-up must finish, however often Ctrl-C is pressed
            for worker in self._workers:
                with suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + GRACE_S
            while any(w.process.is_alive() for w in self._workers):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait([w.process.sentinel for w in self._workers], timeout=min(left, 0.2))
                for worker in self._workers:
                    with suppress(EOFError, OSError):
                        while worker.conn.poll():  # claims made meanwhile, "interrupted" notes
                            self._handle(worker, worker.conn.recv())
            self._kill_all()
            for claim in self._claims.values():
                mark_lost(claim, INTERRUPTED, "interrupted: the sweep was stopped")
            self._claims = {}

    def _kill_all(self) -> None:
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join()
            worker.conn.close()
        self._workers = []

    def close(self) -> None:
        """Ask idle workers to stop, then make sure that none is left."""
        for worker in self._workers:
            with suppress(OSError, ValueError):
                worker.conn.send(("stop",))
        deadline = time.monotonic() + GRACE_S
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        self._kill_all()


@contextmanager
def _signals_ignored() -> Iterator[None]:
    stops = (signal.SIGINT, *STOP_SIGNALS)
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in stops}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_shared: WorkerPool | None = None


@contextmanager
def prestarted(workers: int, preload: Sequence[str] = ()) -> Iterator[WorkerPool]:
    """Start the pool now (while the front end is single-threaded, so workers are forked with its
    imports) and lend it to every `pool_for` inside the block; closed when the block ends."""
    global _shared
    pool = WorkerPool(workers, preload).start()
    _shared = pool
    try:
        yield pool
    finally:
        _shared = None
        pool.close()


@contextmanager
def pool_for(workers: int, preload: Sequence[str] = ()) -> Iterator[WorkerPool]:
    """The prestarted pool if there is one, else a pool of its own for this block."""
    if _shared is not None:
        yield _shared
        return
    with WorkerPool(workers, preload) as pool:
        yield pool


def run_pack(jobs: Sequence[Job], workers: int, preload: Sequence[str] = ()) -> list[Outcome]:
    """Run `jobs` through `workers` processes (the API SLURM packing calls inside one task)."""
    with pool_for(workers, preload) as pool:
        return pool.run(jobs)
