"""Structured configs: the keys users type (`depth=`, `act=`) and their validation.

Fields are plain strings checked against the registries (not Enums) so that one function,
`validate`, gives the same one-line error before Hydra starts, inside a sweep job, and in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

# Keys that change how a run executes, not what it computes: they enter neither the config hash
# (a resumed run is reused whatever they say) nor a run's or a sweep's directory name. The one
# list: configs/config.yaml reads it through the `vgx_execution_keys` resolver.
CONFIG_MODULE = "vgx.configs"  # configs/ at the top of the repo, installed as this package
EXECUTION_KEYS = ("threads", "progress", "logger", "checkpoint_every")


@dataclass
class ModelConfig:
    """A `model/` group entry; `name` selects the builder, the rest are model-specific."""

    name: str = MISSING
    kernel_size: int = 3  # cnn: odd kernel, padding keeps the spatial size
    stages: int = 3  # cnn: stages of `depth` blocks; each after the first halves the map


@dataclass
class DataConfig:
    """A `data/` group entry; unused fields are ignored by datasets that do not need them."""

    name: str = MISSING
    seed: int = 0  # fixed by default: runs with different `seed` see the same data
    n_train: int = 2048
    n_test: int = 512
    n_features: int = 64  # synthetic: input size (a square number gives images for the CNN)
    n_classes: int = 10  # synthetic
    class_sep: float = 1.0  # synthetic: smaller is harder
    n_symbols: int = 8  # copy: alphabet size
    copy_len: int = 5  # copy: symbols to remember
    root: str = "data"  # mnist, fashion_mnist, cifar10: the directory that holds their files
    download: bool = False  # mnist, fashion_mnist, cifar10: fetch missing files (torchvision)


@dataclass
class ProbeConfig:
    """What the GradientProbe records and how often (groups switch metrics on and off)."""

    every: int = 1  # probe every n-th step (step 0 always)
    weights: bool = True  # grad_norm, grad_rms (every probed step)
    act_grads: bool = True  # act_grad_norm (every probed step)
    activations: bool = True  # act_mean, act_std, saturated, zero_fraction, dead_units (detail)
    updates: bool = True  # weight_norm, update_ratio (detail)
    time: bool = True  # the `time` table: state gradients per time step, RNN family (detail)
    detail_every: int = 0  # detail groups: 0 = log grid (vgx/probe/schedule.py), n = every n-th
    hist_every: int = 0  # histograms every n-th step (0: off)
    chunk_rows: int = 20000  # rows per Parquet chunk


@dataclass
class VgxConfig:
    """The top-level keys; `model` and `data` are filled by their config groups."""

    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    experiment: str = ""  # set by configs/experiment/*.yaml
    depth: int = 4
    width: int = 64
    act: str = "relu"
    init: str = "auto"  # the init the activation was designed with (vgx.models.init)
    init_std: float = 0.05  # for init=normal
    norm: str = "none"
    skip: str = "none"
    seq_len: int = 20
    forget_bias: float | None = None  # LSTM forget-gate bias; None keeps PyTorch's init
    recurrent_init: str = "default"
    heads: int = 4  # transformer: attention heads (width must be a multiple)
    norm_position: str = "pre"  # transformer: LayerNorm inside (pre) or after (post) the residual
    optimizer: str = "sgd"
    lr: float = 0.01  # with momentum 0.9: measured in configs/config.yaml
    warmup_steps: int = 0  # linear learning-rate warm-up from lr/warmup_steps to lr; 0: off
    momentum: float = 0.9
    weight_decay: float = 0.0
    steps: int = 200
    batch_size: int = 64
    clip: float = 0.0  # max global grad norm; 0 disables clipping
    eval_every: int = 0  # 0: ten evaluations per run (every steps // 10 steps)
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"  # float64: model, data and every metric in float64
    threads: int = 0  # torch threads per run; 0: cores / parallel jobs
    progress: bool = True  # per-run tqdm bar
    logger: str = "none"
    checkpoint_every: float = 0.0  # minutes between checkpoints; 0: off (on under SLURM: plan.py)
    probe: ProbeConfig = field(default_factory=ProbeConfig)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore (config.yaml extends it) and its resolvers."""
    OmegaConf.register_new_resolver(
        "vgx_execution_keys", lambda: list(EXECUTION_KEYS), replace=True
    )
    store = ConfigStore.instance()
    store.store(name="vgx_schema", node=VgxConfig)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="data", name="data_schema", node=DataConfig)


def to_dict(cfg: DictConfig, resolve: bool = True) -> dict[str, Any]:
    """`cfg` as plain dicts and lists.

    OmegaConf types to_container's result for every kind of node and key; a DictConfig gives a
    dict, and every key of vgx's configs (the schema's, Hydra's, a sweep's params) is a str: the
    cast states what the stubs cannot know.
    """
    container = OmegaConf.to_container(cfg, resolve=resolve)
    assert isinstance(container, dict), "a DictConfig converts to a dict"
    return cast(dict[str, Any], container)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One flat row of config keys for tables: `model.name` becomes `model`, nesting dots."""
    row: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("defaults", "hydra"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            for sub, sub_value in flatten(value, f"{name}.").items():
                row[name if sub == f"{name}.name" else sub] = sub_value
        else:
            row[name] = value
    return row
