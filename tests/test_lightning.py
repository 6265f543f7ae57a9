"""GradientProbeCallback: a tiny Lightning Trainer on CPU writes a vgx run directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip(
    "lightning.pytorch", reason="Lightning is the optional extra vgx[lightning]"
)

from vgx.integrations.lightning import GradientProbeCallback  # noqa: E402
from vgx.report import build_report  # noqa: E402
from vgx.store import RunDir, read_metrics  # noqa: E402

BATCH, FEATURES, CLASSES = 16, 6, 3


class TinyNet(pl.LightningModule):
    def __init__(self, width: int = 8, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(FEATURES, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, CLASSES),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, BATCH, FEATURES, generator=gen)
    y = torch.randint(0, CLASSES, (n, BATCH), generator=gen)
    return list(zip(x, y, strict=True))


def loader(data: list[tuple[torch.Tensor, torch.Tensor]]) -> DataLoader:
    """The batches in order, as Lightning wants them: a DataLoader."""
    x, y = torch.cat([b[0] for b in data]), torch.cat([b[1] for b in data])
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)


def fit(
    tmp_path: Path, data: list, validate: bool = False, **trainer_options: object
) -> tuple[TinyNet, Path]:
    torch.manual_seed(0)
    model = TinyNet()
    run_dir = tmp_path / "run"
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        callbacks=[GradientProbeCallback(run_dir)],
        accelerator="cpu",
        devices=1,
        logger=pl.loggers.CSVLogger(tmp_path / "logs"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_options,
    )
    trainer.fit(model, loader(data), val_dataloaders=loader(data[:1]) if validate else None)
    return model, run_dir


def first_step_grad_norms(data: list, accumulate: int = 1) -> list[float]:
    """‖dL/dW‖ per Linear layer at step 0, by float64 autograd on a copy of the initial model."""
    torch.manual_seed(0)
    model = TinyNet().double()
    for x, y in data[:accumulate]:
        loss = nn.functional.cross_entropy(model(x.double()), y) / accumulate
        loss.backward()
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    return [float(m.weight.grad.norm()) for m in linears]


def test_callback_writes_a_done_run_directory_with_layers_metrics_and_summary(tmp_path):
    _, run_dir = fit(tmp_path, batches(3), max_steps=3)
    run = RunDir(run_dir)
    assert run.read_status()["status"] == "done"
    assert list(pd.read_csv(run.layers_file)["name"]) == ["net.0", "net.2", "net.4"]
    steps = read_metrics(run.metrics_dir, "steps")
    assert sorted(steps["step"]) == [0, 1, 2]
    assert run.read_summary()["steps_done"] == 3


def test_recorded_grad_norm_matches_float64_autograd_on_the_same_batch(tmp_path):
    data = batches(3)
    _, run_dir = fit(tmp_path, data, max_steps=1)
    layers = read_metrics(RunDir(run_dir).metrics_dir, "layers").sort_values("layer")
    expected = first_step_grad_norms(data)
    assert list(layers["grad_norm"]) == pytest.approx(expected, rel=1e-5, abs=0)


def test_with_accumulation_a_step_is_one_optimizer_step_on_the_accumulated_gradient(tmp_path):
    data = batches(4)
    _, run_dir = fit(tmp_path, data, max_steps=2, accumulate_grad_batches=2)
    run = RunDir(run_dir)
    layers = read_metrics(run.metrics_dir, "layers")
    assert sorted(read_metrics(run.metrics_dir, "steps")["step"]) == [0, 1]
    first = layers[layers["step"] == 0].sort_values("layer")
    assert list(first["grad_norm"]) == pytest.approx(
        first_step_grad_norms(data, accumulate=2), rel=1e-5, abs=0
    )


def test_config_holds_the_modules_hparams_and_the_trainers_settings(tmp_path):
    _, run_dir = fit(tmp_path, batches(2), max_steps=2, accumulate_grad_batches=1)
    config = RunDir(run_dir).config.read_text()
    for line in ("width: 8", "lr: 0.1", "max_steps: 2", "model: TinyNet"):
        assert line in config


def test_per_layer_norms_reach_the_trainers_logger_by_layer_name(tmp_path):
    fit(tmp_path, batches(2), max_steps=2)
    logged = pd.read_csv(next((tmp_path / "logs").rglob("metrics.csv")))
    assert {"vgx/grad_norm/net.0", "vgx/act_grad_norm/net.4"} <= set(logged.columns)


def test_vgx_report_turns_the_run_into_the_usual_tables_and_plots(tmp_path):
    _, run_dir = fit(tmp_path, batches(3), validate=True, max_steps=3, val_check_interval=1)
    report = build_report(run_dir.parent)
    summary = pd.read_csv(run_dir.parent / "report" / "summary.csv")
    assert summary["status"].tolist() == ["done"]
    assert (run_dir.parent / "report" / "layers.csv").exists()
    assert any(p.suffix == ".png" for p in report.paths)


def test_validation_metrics_become_the_runs_held_out_evaluations(tmp_path):
    _, run_dir = fit(tmp_path, batches(2), validate=True, max_steps=2, val_check_interval=1)
    evals = read_metrics(RunDir(run_dir).metrics_dir, "evals")
    assert sorted(evals["step"]) == [1, 2]
    assert evals["accuracy"].between(0, 1).all() and (evals["loss"] > 0).all()


def test_a_rank_other_than_zero_hooks_nothing_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pl.Trainer, "is_global_zero", property(lambda self: False))
    _, run_dir = fit(tmp_path, batches(2), max_steps=2)
    assert not run_dir.exists()


def test_a_scaled_loss_is_recorded_unscaled_with_output_gradients_divided_by_the_scale():
    """The AMP path: backward on scaler.scale(loss), unscale_, then capture with loss_scale."""
    from vgx.probe import GradientProbe

    torch.manual_seed(0)
    model = TinyNet()
    x, y = batches(1)[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    with GradientProbe(model) as probe:
        loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        probe.capture(0, loss, loss_scale=scaler.get_scale())
        scaler.step(optimizer)
        probe.commit()
        scaled = probe.frames()["layers"].sort_values("layer")
    torch.manual_seed(0)
    reference = TinyNet()
    outputs = {}
    for i, module in enumerate(m for m in reference.net if isinstance(m, nn.Linear)):
        module.register_forward_hook(
            lambda m, a, out, i=i: out.retain_grad() or outputs.setdefault(i, out)
        )
    nn.functional.cross_entropy(reference(x), y).backward()
    expected = [float(outputs[i].grad.double().norm()) for i in range(3)]
    assert list(scaled["act_grad_norm"]) == pytest.approx(expected, rel=1e-5, abs=0)
    grads = [
        float(m.weight.grad.double().norm()) for m in reference.net if isinstance(m, nn.Linear)
    ]
    assert list(scaled["grad_norm"]) == pytest.approx(grads, rel=1e-5, abs=0)
