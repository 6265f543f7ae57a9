"""`hydra/launcher=vgx_slurm`. Hydra instantiates launchers only from hydra_plugins/, so the
class is declared here; its code is vgx.launch.slurm."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from vgx.launch import slurm


class VgxSlurmLauncher(slurm.VgxSlurmLauncher):
    """Packs of runs as SLURM array tasks (see vgx/launch/slurm.py)."""


@dataclass
class VgxSlurmLauncherConf:
    _target_: str = f"{__name__}.VgxSlurmLauncher"
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"  # submitit's logs and pickles
    partition: Any = None  # your cluster's partition (None: its default)
    timeout_min: int = 60  # wall time per array task (a pack of runs)
    cpus_per_task: int = 1
    gpus_per_node: int = 0  # 1 to train on a GPU (device=auto picks it)
    mem_gb: int = 4
    runs_per_task: int = 1  # runs packed into one array task, one after another ...
    workers: int = 0  # ... `workers` at a time (0: cpus_per_task)
    array_parallelism: int = 64  # array tasks running at once
    signal_delay_s: int = 60  # SLURM warns (USR2) this long before the limit (≤ a quarter of it)
    requeue: bool = False  # a stopped task requeues itself and resumes its runs
    max_requeues: int = 3
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # more sbatch options


ConfigStore.instance().store(
    group="hydra/launcher", name="vgx_slurm", node=VgxSlurmLauncherConf, provider="vgx"
)
