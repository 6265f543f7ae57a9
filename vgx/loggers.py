"""Where a run's metrics go besides its Parquet files (`logger=`), as sinks the probe writes to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from vgx.probe import Sink
from vgx.registry import Registry
from vgx.tensorboard import TensorBoardSink


class Tee:
    """One sink that forwards every table to several (Parquet first, then the live loggers)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> None:
        for sink in self.sinks:
            sink.append(table, columns)

    def describe_layers(self, table: pd.DataFrame) -> None:
        """Hand the probe's layer table to the sinks that name layers (a live logger's tags)."""
        for sink in self.sinks:
            describe = getattr(sink, "describe_layers", None)
            if describe is not None:
                describe(table)

    def close(self) -> None:
        """Close the sinks that hold files open (a live logger's writer)."""
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()


# name -> factory(run_dir) giving an extra sink, or None for no extra logger
LOGGERS: Registry[Callable[[Path], Sink] | None] = Registry(
    "logger", "where metrics are also sent while a run goes"
)
LOGGERS.add("none", None)
LOGGERS.add("tensorboard", TensorBoardSink)


def open_sink(logger: str, run_dir: Path, parquet: Sink) -> Tee:
    """The sink a run writes to: its Parquet writer, teed to the chosen live logger."""
    factory = LOGGERS[logger]
    return Tee(parquet) if factory is None else Tee(parquet, factory(run_dir))
