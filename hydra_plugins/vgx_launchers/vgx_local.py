"""`hydra/launcher=vgx_local`. Hydra instantiates launchers only from hydra_plugins/, so the
class is declared here; its code is vgx.launch.local."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from vgx.launch import local


class VgxLocalLauncher(local.VgxLocalLauncher):
    """vgx's process pool as a Hydra launcher (see vgx/launch/local.py)."""


@dataclass
class VgxLocalLauncherConf:
    _target_: str = f"{__name__}.VgxLocalLauncher"
    workers: int = 0  # 0: the cores this process may use


ConfigStore.instance().store(
    group="hydra/launcher", name="vgx_local", node=VgxLocalLauncherConf, provider="vgx"
)
