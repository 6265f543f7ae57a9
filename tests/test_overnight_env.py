"""Environment errors (disk full, read-only, a file where a directory goes, a closed pipe): one
line, a non-zero exit, the in-flight run `failed` with the reason, later runs still tried.

Disk full and read-only are real file systems: a small tmpfs mounted for the test (needs root
and mount rights; skipped where the sandbox refuses the mount).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TINY, VGX, run_vgx, vgx_env
from vgx.store import find_runs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 KiB tmpfs: a run with histograms every step fills it within its first steps."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mountpoint)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("vgx: error:")]
    assert "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    return errors[0]


def test_disk_full_fails_the_in_flight_run_with_the_reason_and_tries_the_next(small_disk):
    result = run_vgx(
        "sweep",
        "seed=0,1",
        "steps=2000",
        "width=8",
        "threads=1",
        "progress=false",
        "probe.hist_every=1",
        "probe.chunk_rows=50",
        "hydra/launcher=basic",
        f"hydra.sweep.dir={small_disk / 's'}",
        cwd=small_disk.parent,
    )
    assert result.returncode == 1
    assert "disk full" in one_error_line(result.stderr)  # the report that cannot be written
    first, second = sorted(p for p in (small_disk / "s").iterdir() if p.is_dir())
    status = (first / "status.json").read_text()
    assert '"failed"' in status and "No space left on device" in status
    assert (second / ".vgx-lock").exists()  # the next run was tried
    # Both runs are in the tally: the log's step records took its first block before the disk
    # filled, so the end lines fit (without it they would be counted as "2 not recorded").
    assert "0 done, 2 failed" in result.stdout or "2 not recorded" in result.stdout
    assert not [r for r in find_runs(small_disk) if r.read_status()["status"] == "running"]


def test_sweep_into_a_read_only_directory_is_one_line(small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_vgx("sweep", "depth=2,3", *TINY, f"hydra.sweep.dir={small_disk}/s", cwd=small_disk)
    assert result.returncode == 1
    assert one_error_line(result.stderr).endswith(f"{small_disk} is not writable")


@pytest.mark.parametrize(
    ("command", "key"), [("sweep", "hydra.sweep.dir"), ("run", "hydra.run.dir")]
)
def test_a_file_where_the_output_directory_goes_is_one_line(tmp_path, command, key):
    (tmp_path / "taken").write_text("a file")
    result = run_vgx(command, *TINY, f"{key}=taken/sub", cwd=tmp_path)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"vgx: error: {key}=taken/sub: taken is a file, not a directory"
    )


def test_listing_into_a_closed_pipe_is_one_line_and_a_non_zero_exit():
    process = subprocess.Popen(
        [VGX, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=vgx_env()
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `vgx list | head -0`: the reader is gone before vgx writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert one_error_line(stderr) == "vgx: error: output closed early (broken pipe)"
