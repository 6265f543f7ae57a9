"""Run files as the store writes them."""

from __future__ import annotations

import os
import stat

from vgx.store import atomic_write_text


def test_atomic_write_gives_the_file_the_mode_the_umask_allows(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "status.json"
    atomic_write_text(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
