"""`vgx` with one extra dataset, `faulty`, whose loader raises: a stand-in for a bug in one run."""

import sys

from vgx.cli import main
from vgx.data import DATASETS


def load_faulty(cfg: object, seq_len: int) -> None:
    raise RuntimeError("simulated bug in a data loader")


DATASETS.add("faulty", load_faulty)
sys.exit(main())
