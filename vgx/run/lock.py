"""One writer per run: a run directory is trained by one live process at a time.

Two ways to own a run, chosen by `VGX_LOCK` (`auto`, the default, `flock` or `lease`):

- `flock`: an exclusive `flock` on `.vgx-lock` in the run directory. The kernel releases it when
  the owner dies, however it dies (`kill -9`, OOM), so nothing is ever stale. Used wherever the
  file system supports it (`auto` tries it first).
- `lease`: `.vgx-lease` created with O_EXCL, holding host, pid and a token; a thread refreshes
  its mtime every `HEARTBEAT_S`. Another process takes it over once the heartbeat is older than
  `STALE_S`, or at once when the owner is on the same host and its pid is gone. For file systems
  where flock is missing or not shared between hosts (NFS): `auto` falls back to it when flock
  fails with an error other than "held by someone else"; set `VGX_LOCK=lease` on NFS where flock
  only locks per client.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from vgx.errors import VgxError

log = logging.getLogger(__name__)

LOCK_FILE = ".vgx-lock"
LEASE_FILE = ".vgx-lease"
LOCK_MODES = ("auto", "flock", "lease")
HEARTBEAT_S = 10.0
STALE_S = 60.0  # six missed heartbeats: a live owner on a loaded machine still refreshes in time


def lock_mode() -> str:
    """The lock kind from VGX_LOCK; a bad value is one line naming the valid ones."""
    mode = os.environ.get("VGX_LOCK", "auto")
    if mode not in LOCK_MODES:
        raise VgxError(f"VGX_LOCK={mode} is not a lock kind; valid: {', '.join(LOCK_MODES)}")
    return mode


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """Exclusive ownership of one run directory; `acquire` is False when a live process owns it."""

    def __init__(
        self,
        run_dir: Path,
        mode: str | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        stale_s: float = STALE_S,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.mode = mode or lock_mode()
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.kind: str | None = None  # "flock" or "lease" once held
        self.owner: dict[str, object] = {}  # who holds it, when acquire returned False
        self._fd: int | None = None
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease_file(self) -> Path:
        return self.run_dir / LEASE_FILE

    def acquire(self) -> bool:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.mode in ("auto", "flock"):
            held = self._flock()
            if held is not None:
                return held
            if self.mode == "flock":
                raise VgxError(f"flock is not supported in {self.run_dir}; set VGX_LOCK=lease")
        return self._lease()

    def release(self) -> None:
        if self.kind == "flock" and self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking would race)
            self._fd = None
        elif self.kind == "lease":
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            if self._read_lease().get("token") == self._token:
                self.lease_file.unlink(missing_ok=True)
        self.kind = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _flock(self) -> bool | None:
        """True if locked, False if another process holds it, None if flock does not work here."""
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.owner = _parse(os.pread(fd, 4096, 0))
            os.close(fd)
            return False
        except OSError as err:  # ENOLCK, EOPNOTSUPP, EINVAL: no flock on this file system
            os.close(fd)
            log.info("flock unavailable in %s (%s): using a lease", self.run_dir, err)
            return None
        with contextlib.suppress(OSError):  # who holds it is for messages only (disk full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self._identity()).encode(), 0)
        self._fd, self.kind = fd, "flock"
        return True

    def _identity(self) -> dict[str, object]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self._token}

    def _lease(self) -> bool:
        for _ in range(3):  # a takeover race lost to another process: look again
            try:
                fd = os.open(self.lease_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._read_lease()
                if not self._stale(holder):
                    self.owner = holder
                    return False
                self._take_over(holder)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._identity(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.kind = "lease"
            self._thread = threading.Thread(target=self._heartbeat, daemon=True)
            self._thread.start()
            return True
        self.owner = self._read_lease()
        return False

    def _read_lease(self) -> dict[str, object]:
        try:
            raw, mtime = self.lease_file.read_bytes(), self.lease_file.stat().st_mtime
        except FileNotFoundError:
            return {}
        return {**_parse(raw), "mtime": mtime}

    def _stale(self, holder: dict[str, object]) -> bool:
        if not holder:  # removed between our create and our read: free now
            return True
        mtime = holder.get("mtime")
        if isinstance(mtime, float) and time.time() - mtime > self.stale_s:
            return True
        pid = holder.get("pid")
        same_host = holder.get("host") == socket.gethostname()
        return same_host and isinstance(pid, int) and not pid_alive(pid)

    def _take_over(self, holder: dict[str, object]) -> None:
        """Move the stale lease aside; only one of several takers' renames succeeds."""
        aside = self.run_dir / f"{LEASE_FILE}.stale-{self._token}"
        try:
            os.rename(self.lease_file, aside)
        except FileNotFoundError:
            return
        moved = _parse(aside.read_bytes())
        if moved.get("token") != holder.get("token"):  # a fresh lease taken meanwhile: put back
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.lease_file)
        aside.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self._read_lease().get("token") != self._token:
                log.error("lease on %s was taken over by another process", self.run_dir)
                return
            try:
                os.utime(self.lease_file)
            except OSError as err:
                log.warning("lease heartbeat on %s failed: %s", self.run_dir, err)


def _parse(raw: bytes) -> dict[str, object]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(owner: dict[str, object]) -> str:
    """`host pid N` of a lock's owner, for the busy message."""
    if not owner:
        return "another process"
    return f"{owner.get('host', '?')} pid {owner.get('pid', '?')}"
