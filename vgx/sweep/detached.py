"""The detached front end's entry point: `vgx sweep ARGS`, then its exit code for `vgx status`.

Apart from vgx/sweep/detach.py (which starts it and reads its record) because it runs the whole
command line: it sits above vgx.cli, while detach.py sits below it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vgx.cli import main as vgx_main
from vgx.store import atomic_write_json, read_json
from vgx.sweep.detach import DETACH_FILE


def main(argv: list[str]) -> int:
    """The detached front end: `vgx sweep ARGS`, then its exit code recorded for `vgx status`."""
    sweep_dir, args = Path(argv[0]), argv[1:]
    code = 1
    try:
        code = vgx_main(["sweep", *args])
    finally:
        path = sweep_dir / DETACH_FILE
        record = read_json(path) if path.exists() else {"pid": os.getpid()}
        atomic_write_json(path, {**record, "exit_code": code, "ended": time.time()})
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
