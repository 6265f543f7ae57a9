"""GradientProbe: each recorded metric equals an independent computation on the same model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from vgx.errors import ConfigError
from vgx.probe import GradientProbe
from vgx.probe.activations import activation_shape, statistics
from vgx.store import MetricsWriter, read_metrics

RTOL = 1e-5


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class Seq(nn.Module):
    """A recurrent layer (its output sequence) then a linear head on every time step."""

    def __init__(self, cell: type[nn.RNNBase], batch_first: bool = True) -> None:
        super().__init__()
        self.rnn = cell(3, 5, num_layers=2, batch_first=batch_first)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def wide_mlp() -> nn.Module:
    """Large enough for the vectorised CPU kernels (tensors of 16K elements and more)."""
    return nn.Sequential(
        nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 3),
    )


FAMILIES = {
    "mlp": (mlp, (4, 6)),
    "cnn": (cnn, (4, 1, 6, 6)),
    "rnn": (lambda: Seq(nn.RNN), (4, 7, 3)),
    "lstm": (lambda: Seq(nn.LSTM), (4, 7, 3)),
    "gru": (lambda: Seq(nn.GRU), (4, 7, 3)),
}


def loss_of(output: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient differs per output element (a plain sum would be too symmetric)."""
    return (output * torch.linspace(-1.0, 2.0, output.numel()).view_as(output)).sum()


def train_step(
    model: nn.Module,
    probe: GradientProbe,
    x: torch.Tensor,
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """The training loop's four calls (plus the optimizer step when given)."""
    loss = loss_of(model(x))
    model.zero_grad()
    loss.backward()
    probe.capture(step, loss)
    if optimizer is not None:
        optimizer.step()
    probe.commit()


def recorded(probe: GradientProbe, column: str, step: int = 0) -> dict[str, float]:
    """{layer name: value} of one column at one step."""
    layers = probe.frames()["layers"]
    rows = layers[layers.step == step].merge(probe.layer_table(), on="layer")
    return dict(zip(rows.name, rows[column].astype(float), strict=True))


def layer_weights(model: nn.Module, name: str) -> list[nn.Parameter]:
    module = model.get_submodule(name)
    return [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight")]


def total_norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in tensors]).double()))


def retained_outputs(model: nn.Module, names: list[str]) -> dict[str, list[torch.Tensor]]:
    """Each named module's outputs, per call, with retain_grad() (RNN: the output sequence)."""
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def keep(module: nn.Module, args: object, output: object) -> None:
        out = output[0] if isinstance(output, tuple) else output
        out.retain_grad()
        outputs[names[modules.index(module)]].append(out)

    modules = [model.get_submodule(name) for name in names]
    for module in modules:
        module.register_forward_hook(keep)
    return outputs


# -- gradients, output gradients, updates ------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_grad_norm_equals_autograd_grad_norm(family: str) -> None:
    build, shape = FAMILIES[family]
    model, x = build(), torch.randn(shape)
    probe = GradientProbe(model)
    train_step(model, probe, x)
    for name, value in recorded(probe, "grad_norm").items():
        weights = layer_weights(model, name)
        expected = total_norm(torch.autograd.grad(loss_of(model(x)), weights))
        assert value == pytest.approx(expected, rel=RTOL), name


@pytest.mark.parametrize("family", FAMILIES)
def test_act_grad_norm_equals_retained_output_grad(family: str) -> None:
    build, shape = FAMILIES[family]
    model, x = build(), torch.randn(shape)
    with GradientProbe(model) as names_only:
        names = list(names_only.layer_table().name)
    outputs = retained_outputs(model, names)
    probe = GradientProbe(model)
    train_step(model, probe, x)
    for name, value in recorded(probe, "act_grad_norm").items():
        assert value == pytest.approx(total_norm([o.grad for o in outputs[name]]), rel=RTOL), name


def test_grad_total_norm_and_loss_cover_all_parameters() -> None:
    model, x = cnn(), torch.randn(4, 1, 6, 6)
    probe = GradientProbe(model)
    train_step(model, probe, x)
    steps = probe.frames()["steps"]
    grads = torch.autograd.grad(loss_of(model(x)), list(model.parameters()))
    assert steps.grad_total_norm[0] == pytest.approx(total_norm(list(grads)), rel=RTOL)
    assert steps.loss[0] == pytest.approx(float(loss_of(model(x)).detach()), rel=RTOL)


@pytest.mark.parametrize("step", [0, 1])  # every=2: step 1 is not probed
def test_grad_total_norm_for_the_loop_is_the_norm_of_all_gradients(step: int) -> None:
    model, x = wide_mlp(), torch.randn(8, 64)
    probe = GradientProbe(model, every=2)
    probe.start_step(step)
    loss = loss_of(model(x)) * 1e-25
    loss.backward()
    probe.capture(step, loss)
    expected = total_norm([p.grad for p in model.parameters()])
    assert float(probe.grad_total_norm()) == pytest.approx(expected, rel=RTOL, abs=0)


def test_update_ratio_equals_copied_weight_change() -> None:
    model, x = mlp(), torch.randn(4, 6)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = {n: [w.detach().clone() for w in layer_weights(model, n)] for n in ("0", "2", "4")}
    probe = GradientProbe(model)
    train_step(model, probe, x, optimizer=optimizer)
    for name, value in recorded(probe, "update_ratio").items():
        after = layer_weights(model, name)
        change = total_norm([a.detach() - b for a, b in zip(after, before[name], strict=True)])
        assert value == pytest.approx(change / total_norm(before[name]), rel=1e-4), name
        assert recorded(probe, "weight_norm")[name] == pytest.approx(total_norm(before[name]))


@pytest.mark.parametrize("scale", [1e-20, 1e-30])
def test_vanished_gradients_get_their_exact_norm_not_zero(scale: float) -> None:
    # The squares of 1e-20 are float32 subnormals and those of 1e-30 underflow to 0; tensors
    # this large take the vectorised float32 kernels (tiny ones happen to be summed exactly).
    model, x = wide_mlp(), torch.randn(64, 64)
    outputs = retained_outputs(model, ["0", "2", "4"])
    probe = GradientProbe(model)
    loss = loss_of(model(x)) * scale
    loss.backward()
    probe.capture(0, loss)
    probe.commit()
    for name in ("0", "2", "4"):
        expected = total_norm([w.grad for w in layer_weights(model, name)])
        assert 0 < expected < 1e3 * scale
        assert recorded(probe, "grad_norm")[name] == pytest.approx(expected, rel=RTOL, abs=0), name
        act_grad = total_norm([o.grad for o in outputs[name]])
        assert recorded(probe, "act_grad_norm")[name] == pytest.approx(act_grad, rel=RTOL, abs=0), (
            name
        )


def test_tiny_activations_get_their_exact_spread() -> None:
    model = nn.Sequential(nn.Linear(64, 256, bias=False), nn.Tanh(), nn.Linear(256, 3))
    x = torch.randn(64, 64) * 1e-25
    outputs = retained_outputs(model, ["1"])
    probe = GradientProbe(model)
    train_step(model, probe, x)
    y = outputs["1"][0].detach().double()
    assert recorded(probe, "act_std")["0"] == pytest.approx(
        float(y.std(correction=0)), rel=RTOL, abs=0
    )


def test_a_weight_too_small_to_change_has_update_ratio_exactly_zero() -> None:
    model, x = mlp(), torch.randn(4, 6)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-30)  # far below float32's resolution
    probe = GradientProbe(model)
    train_step(model, probe, x, optimizer=optimizer)
    assert set(recorded(probe, "update_ratio").values()) == {0.0}


# -- activation statistics ---------------------------------------------------------------------


def identity_layer_then(activation: nn.Module) -> nn.Module:
    """Linear(5, 5) = identity, so the activation sees exactly the input."""
    layer = nn.Linear(5, 5)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(5))
        layer.bias.zero_()
    return nn.Sequential(layer, activation)


@pytest.mark.parametrize(
    ("activation", "inputs", "saturated"),
    [
        # sigmoid y(1-y) < 0.0125 beyond |x| ≈ 4.36; tanh 1-y² < 0.05 beyond |x| ≈ 2.18;
        # softsign 1/(1+|x|)² < 0.05 beyond |x| ≈ 3.47
        (nn.Sigmoid(), [-8.0, -3.0, 0.0, 2.0, 6.0], 2 / 5),
        (nn.Tanh(), [-3.0, -1.0, 0.0, 0.5, 4.0], 2 / 5),
        (nn.Softsign(), [-5.0, -1.0, 0.0, 2.0, 10.0], 2 / 5),
    ],
)
def test_saturated_counts_units_with_derivative_below_5_percent(
    activation: nn.Module, inputs: list[float], saturated: float
) -> None:
    model = identity_layer_then(activation)
    probe = GradientProbe(model)
    train_step(model, probe, torch.tensor([inputs]))
    assert recorded(probe, "saturated")["0"] == pytest.approx(saturated)
    assert np.isnan(recorded(probe, "zero_fraction")["0"])


@pytest.mark.parametrize(("activation", "dead"), [(nn.ReLU(), 3 / 5), (nn.LeakyReLU(), 1 / 5)])
def test_zero_fraction_counts_exact_zeros_of_relu_family(
    activation: nn.Module, dead: float
) -> None:
    model = identity_layer_then(activation)
    probe = GradientProbe(model)
    train_step(model, probe, torch.tensor([[-2.0, -1.0, 0.0, 1.0, 3.0]]))
    assert recorded(probe, "zero_fraction")["0"] == pytest.approx(dead)
    assert np.isnan(recorded(probe, "saturated")["0"])


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid()])
def test_counts_of_a_bfloat16_output_are_exact_beyond_its_256_integers(
    activation: nn.Module,
) -> None:
    torch.manual_seed(0)
    y = activation(torch.randn(100, 1000) * 3).bfloat16()
    shape = activation_shape(activation)
    if shape.saturation is not None:
        center, bound = shape.saturation
        expected = int(((y.double() - center).abs() > bound).sum())
    else:
        expected = int((y != 0).sum())
    counted = statistics(0, y, shape).sums[2]
    assert counted.dtype == torch.float64 and int(counted) == expected


def test_dead_units_counts_units_zero_for_every_example_of_the_batch() -> None:
    model = identity_layer_then(nn.ReLU())
    probe = GradientProbe(model)
    # unit 0 is zero for both examples (dead); units 1-4 are zero for one example only
    batch = torch.tensor([[-1.0, -2.0, 3.0, 0.0, 1.0], [-3.0, 1.0, -1.0, 2.0, -1.0]])
    train_step(model, probe, batch)
    assert recorded(probe, "dead_units")["0"] == pytest.approx(1 / 5)
    assert recorded(probe, "zero_fraction")["0"] == pytest.approx(6 / 10)


def test_act_mean_and_std_describe_the_following_activation_output() -> None:
    model, x = mlp(), torch.randn(4, 6)
    outputs = retained_outputs(model, ["1", "3"])  # Tanh after layer 0, ReLU after layer 2
    probe = GradientProbe(model)
    train_step(model, probe, x)
    for layer, activation in (("0", "1"), ("2", "3")):
        y = outputs[activation][0].detach()
        assert recorded(probe, "act_mean")[layer] == pytest.approx(float(y.mean()), abs=1e-6)
        assert recorded(probe, "act_std")[layer] == pytest.approx(float(y.std(correction=0)))


def test_functional_activation_falls_back_to_the_layer_output() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.fc(x)))

    model, x = Functional(), torch.randn(4, 6)
    probe = GradientProbe(model)
    train_step(model, probe, x)
    pre = model.fc(x).detach()
    assert recorded(probe, "act_mean")["fc"] == pytest.approx(float(pre.mean()), abs=1e-6)
    assert recorded(probe, "act_std")["fc"] == pytest.approx(float(pre.std(correction=0)))
    assert np.isnan(recorded(probe, "zero_fraction")["fc"])


# -- recurrent layers --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
def test_output_grad_norm_of_stacked_layer_equals_retained_output_grad_per_time_step(
    cell: type[nn.RNNBase], batch_first: bool
) -> None:
    model = Seq(cell, batch_first)
    x = torch.randn(4, 7, 3) if batch_first else torch.randn(7, 4, 3)
    outputs = retained_outputs(model, ["rnn"])
    probe = GradientProbe(model)
    train_step(model, probe, x)
    grad = outputs["rnn"][0].grad
    per_step = grad.norm(dim=(0, 2)) if batch_first else grad.norm(dim=(1, 2))
    time = probe.frames()["time"]
    assert list(time.t) == list(range(7))
    np.testing.assert_allclose(time.output_grad_norm, per_step.numpy(), rtol=RTOL)


def test_stacked_fused_layer_has_no_hidden_grad_norm() -> None:
    # num_layers=2 never returns its lower layer's states: ∂L/∂h_t is not measured, not guessed
    model = Seq(nn.LSTM)
    probe = GradientProbe(model)
    train_step(model, probe, torch.randn(4, 7, 3))
    time = probe.frames()["time"]
    assert time.hidden_grad_norm.isna().all() and time.cell_grad_norm.isna().all()


def test_output_grad_norm_of_packed_sequence_follows_its_time_steps() -> None:
    model = Seq(nn.LSTM)
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 4, 2])
    probe = GradientProbe(model)
    out, _ = model.rnn(pack_padded_sequence(x, lengths, batch_first=True))
    out.data.retain_grad()
    loss = loss_of(model.head(out.data))
    loss.backward()
    probe.capture(0, loss)
    probe.commit()
    rows = torch.repeat_interleave(torch.arange(6), out.batch_sizes)
    expected = torch.stack([out.data.grad[rows == t].norm() for t in range(6)])
    np.testing.assert_allclose(probe.frames()["time"].output_grad_norm, expected, rtol=RTOL)


def test_unrolled_cell_records_each_call_as_a_time_step() -> None:
    class Unrolled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = nn.GRUCell(3, 5)
            self.head = nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.zeros(x.shape[0], 5)
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
            return self.head(h)

    model, x = Unrolled(), torch.randn(4, 6, 3)
    outputs = retained_outputs(model, ["cell"])
    probe = GradientProbe(model)
    train_step(model, probe, x)
    # the gradient at h_t includes the path through later steps: it varies along t
    expected = [float(h.grad.norm()) for h in outputs["cell"]]
    np.testing.assert_allclose(probe.frames()["time"].hidden_grad_norm, expected, rtol=RTOL)
    assert recorded(probe, "act_grad_norm")["cell"] == pytest.approx(
        float(np.linalg.norm(expected)), rel=RTOL
    )


# -- hook traps --------------------------------------------------------------------------------


def test_shared_layer_aggregates_its_calls() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.Tanh()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.fc(self.act(self.fc(x))))

    model, x = Shared(), torch.randn(3, 4)
    outputs = retained_outputs(model, ["fc", "act"])
    probe = GradientProbe(model)
    train_step(model, probe, x)
    both = torch.cat([y.detach().reshape(-1) for y in outputs["act"]])
    assert recorded(probe, "act_grad_norm")["fc"] == pytest.approx(
        total_norm([o.grad for o in outputs["fc"]]), rel=RTOL
    )
    assert recorded(probe, "act_mean")["fc"] == pytest.approx(float(both.mean()), abs=1e-6)
    assert recorded(probe, "act_std")["fc"] == pytest.approx(float(both.std(correction=0)))
    expected = total_norm(torch.autograd.grad(loss_of(model(x)), [model.fc.weight]))
    assert recorded(probe, "grad_norm")["fc"] == pytest.approx(expected, rel=RTOL)


class InPlaceResidual(nn.Module):
    """ReLU(inplace=True) and `out += x`: what full backward hooks cannot handle."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 6), nn.Linear(6, 6)
        self.relu1, self.relu2 = nn.ReLU(inplace=True), nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.relu1(self.fc1(x)))
        out += x
        return self.relu2(out)


def test_inplace_relu_and_residual_add_are_measured() -> None:
    model, x = InPlaceResidual(), torch.randn(5, 6).requires_grad_()
    probe = GradientProbe(model)
    train_step(model, probe, x)
    a = model.fc1(x)  # the same computation without in-place ops
    b = model.fc2(torch.relu(a))
    grads = torch.autograd.grad(loss_of(torch.relu(b + x)), [a, b, model.fc2.weight])
    checks = [("act_grad_norm", "fc1"), ("act_grad_norm", "fc2"), ("grad_norm", "fc2")]
    for (column, name), grad in zip(checks, grads, strict=True):
        assert recorded(probe, column)[name] == pytest.approx(float(grad.norm()), rel=RTOL)
    dead = float((torch.relu(a) == 0).double().mean())
    assert recorded(probe, "zero_fraction")["fc1"] == pytest.approx(dead)


def test_input_without_requires_grad_still_gets_act_grad_norm() -> None:
    model, x = mlp(), torch.randn(4, 6)
    assert not x.requires_grad
    outputs = retained_outputs(model, ["0"])
    probe = GradientProbe(model)
    train_step(model, probe, x)
    value = recorded(probe, "act_grad_norm")["0"]
    assert value > 0
    assert value == pytest.approx(float(outputs["0"][0].grad.norm()), rel=RTOL)


def test_amp_grad_scaler_records_unscaled_norms() -> None:
    model, x = mlp(), torch.randn(4, 6)
    reference = copy.deepcopy(model)
    outputs = retained_outputs(reference, ["4"])
    loss_of(reference(x)).backward()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = GradientProbe(model)
    loss = loss_of(model(x))
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    probe.capture(0, loss, loss_scale=scaler.get_scale())
    scaler.step(optimizer)
    scaler.update()
    probe.commit()
    expected = float(reference.get_submodule("4").weight.grad.norm())
    assert recorded(probe, "grad_norm")["4"] == pytest.approx(expected, rel=RTOL)
    out_grad = float(outputs["4"][0].grad.norm())
    assert recorded(probe, "act_grad_norm")["4"] == pytest.approx(out_grad, rel=RTOL)


def test_emulated_loss_scale_is_divided_out_of_output_gradients() -> None:
    model, x = mlp(), torch.randn(4, 6)
    twin = copy.deepcopy(model)
    plain = GradientProbe(twin)
    train_step(twin, plain, x)
    scaled = GradientProbe(model)
    loss = loss_of(model(x))
    (loss * 1024).backward()
    for p in model.parameters():
        p.grad /= 1024  # what GradScaler.unscale_ does
    scaled.capture(0, loss, loss_scale=1024)
    scaled.commit()
    for column in ("grad_norm", "act_grad_norm"):
        for name, value in recorded(plain, column).items():
            assert recorded(scaled, column)[name] == pytest.approx(value, rel=RTOL), column


# -- lifecycle: which steps, which forwards, what is left behind -------------------------------


HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


def test_close_removes_every_hook_and_leaves_the_model_unchanged() -> None:
    model, x = InPlaceResidual(), torch.randn(5, 6)
    twin = copy.deepcopy(model)
    optimizer, twin_optimizer = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    with GradientProbe(model) as probe:
        for step in range(2):
            train_step(model, probe, x, step, optimizer)
            twin_optimizer.zero_grad()
            loss_of(twin(x)).backward()
            twin_optimizer.step()
    for module in model.modules():
        assert not any(getattr(module, d) for d in HOOK_DICTS), module
    assert all(p._post_accumulate_grad_hooks is None for p in model.parameters())
    model.zero_grad()
    twin.zero_grad()
    out, twin_out = model(x), twin(x)
    torch.testing.assert_close(out, twin_out, rtol=0, atol=0)
    loss_of(out).backward()
    loss_of(twin_out).backward()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


def test_every_records_only_multiples_of_every() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model, every=3)
    for step in range(8):
        train_step(model, probe, x, step)
    frames = probe.frames()
    assert list(frames["steps"].step) == [0, 3, 6]
    assert sorted(set(frames["layers"].step)) == [0, 3, 6]
    assert not frames["layers"].act_mean.isna().any()
    assert [probe.is_probed(s) for s in range(4)] == [True, False, False, True]


class CountTorchCalls(torch.overrides.TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_unprobed_step_runs_no_torch_operation_of_the_probe() -> None:
    model, x = mlp(), torch.randn(4, 6)
    twin = copy.deepcopy(model)
    probe = GradientProbe(model, every=2)
    train_step(model, probe, x, step=0)
    counts = []
    for net, step_probe in ((model, probe), (twin, None)):
        with CountTorchCalls() as counter:
            loss = loss_of(net(x))
            loss.backward()
            if step_probe is not None:
                step_probe.capture(1, loss)
                step_probe.commit()
        counts.append(counter.calls)
    assert counts[0] == counts[1]


def test_close_records_a_step_whose_commit_was_skipped() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model)
    loss = loss_of(model(x))
    loss.backward()
    probe.capture(0, loss)  # the loop stops here, e.g. on divergence: no step(), no commit()
    probe.close()
    frames = probe.frames()
    assert list(frames["steps"].step) == [0]
    assert (frames["layers"].update_ratio == 0).all()


def test_every_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError):
        GradientProbe(mlp(), every=0)


def test_start_step_arms_a_forward_after_skipped_steps() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model, every=5)
    train_step(model, probe, x, step=0)
    probe.start_step(10)  # the loop jumps from step 0 to step 10
    train_step(model, probe, x, step=10)
    layers = probe.frames()["layers"]
    assert not layers[layers.step == 10].act_mean.isna().any()


def test_forward_under_no_grad_is_not_recorded() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model)
    with torch.no_grad():
        model(torch.randn(50, 6) * 100)  # an evaluation before the step
    train_step(model, probe, x)
    y = torch.tanh(model[0](x)).detach()
    assert recorded(probe, "act_mean")["0"] == pytest.approx(float(y.mean()), abs=1e-6)


def test_forward_order_is_call_order_not_registration_order() -> None:
    class Reversed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Linear(8, 2)
            self.early = nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.late(self.early(x))

    model = Reversed()
    probe = GradientProbe(model)
    assert list(probe.layer_table().name) == ["late", "early"]  # before any forward
    train_step(model, probe, torch.randn(3, 4))
    assert list(probe.layer_table().name) == ["early", "late"]
    grad_norm = probe.frames()["layers"].set_index("layer").grad_norm
    assert grad_norm[0] == pytest.approx(float(model.early.weight.grad.norm()))


def test_layer_table_lists_weight_owning_modules_with_their_sizes() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, groups=2),
        nn.BatchNorm2d(4),
        nn.PReLU(),
        nn.Flatten(),
        nn.LayerNorm(16, elementwise_affine=False),
        nn.Linear(16, 5),
    )
    table = GradientProbe(model).layer_table()
    assert list(table.columns) == ["layer", "name", "kind", "params", "fan_in", "fan_out"]
    assert table.values.tolist() == [
        [0, "0", "conv", 4 * 1 * 9, 1 * 9, 4 * 9],
        [1, "1", "norm", 4, 4, 4],
        [2, "5", "linear", 80, 16, 5],
    ]
    lstm = GradientProbe(nn.LSTM(3, 5, num_layers=2)).layer_table()
    assert lstm.values.tolist() == [[0, "", "lstm", 4 * 5 * (3 + 5) + 2 * 4 * 5 * 5, 3, 20]]


def test_groups_switched_off_write_nan_columns_and_keep_the_schema() -> None:
    model, x = Seq(nn.GRU), torch.randn(2, 4, 3)
    probe = GradientProbe(
        model, weights=False, act_grads=False, activations=False, updates=False, time=False
    )
    train_step(model, probe, x)
    frames = probe.frames()
    full = GradientProbe(Seq(nn.GRU))
    assert frames["layers"].dtypes.to_dict() == full.frames()["layers"].dtypes.to_dict()
    metrics = frames["layers"].drop(columns=["step", "layer", "nonfinite"])
    assert metrics.isna().all().all()
    assert frames["time"].empty
    assert frames["steps"].grad_total_norm[0] > 0


# -- NaN / Inf ---------------------------------------------------------------------------------


def test_nonfinite_gradients_are_counted_and_never_masked() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model)
    loss = loss_of(model(x))
    loss.backward()
    model[0].weight.grad[0, 0] = float("inf")
    model[2].weight.grad[1, :3] = float("nan")
    probe.capture(0, loss)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # turns every gradient NaN
    probe.commit()
    assert recorded(probe, "nonfinite") == {"0": 1, "2": 3, "4": 0}
    assert recorded(probe, "grad_norm")["0"] == float("inf")
    assert np.isnan(recorded(probe, "grad_norm")["2"])
    assert np.isfinite(recorded(probe, "grad_norm")["4"])
    steps = probe.frames()["steps"]
    assert steps.nonfinite[0] == 4
    assert np.isnan(steps.grad_total_norm[0])


def test_locate_nonfinite_names_the_first_layer_with_nonfinite_activations() -> None:
    model, x = mlp(), torch.randn(4, 6)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    probe = GradientProbe(model)
    train_step(model, probe, x)
    assert probe.locate_nonfinite() == "2"


def test_locate_nonfinite_falls_back_to_the_gradient_nearest_the_output() -> None:
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model, every=2)
    assert probe.locate_nonfinite() is None
    for step in range(2):  # step 1 is not probed: the current gradients are scanned
        loss = loss_of(model(x))
        model.zero_grad()
        loss.backward()
        model[0].weight.grad[0, 0] = float("inf")
        model[2].weight.grad[0, 0] = float("nan")
        probe.capture(step, loss)
        assert probe.locate_nonfinite() == "2"
        probe.commit()
        assert probe.locate_nonfinite() == "2"


# -- sink --------------------------------------------------------------------------------------


def test_metrics_writer_sink_writes_the_documented_parquet_schema(tmp_path) -> None:
    model, x = Seq(nn.LSTM), torch.randn(2, 4, 3)
    with MetricsWriter(tmp_path / "metrics") as writer, GradientProbe(model, sink=writer) as probe:
        for step in range(3):
            train_step(model, probe, x, step, torch.optim.SGD(model.parameters(), lr=0.1))
    documented = {
        "layers": {
            "step": "int64",
            "layer": "int32",
            **dict.fromkeys(
                ["grad_norm", "grad_rms", "act_grad_norm", "weight_norm", "update_ratio"],
                "float64",
            ),
            **dict.fromkeys(["act_mean", "act_std", "saturated", "zero_fraction"], "float64"),
            "dead_units": "float64",
            "nonfinite": "int64",
        },
        "steps": {
            "step": "int64",
            "loss": "float64",
            "grad_total_norm": "float64",
            "nonfinite": "int64",
        },
        "time": {
            "step": "int64",
            "layer": "int32",
            "t": "int32",
            **dict.fromkeys(["hidden_grad_norm", "cell_grad_norm", "output_grad_norm"], "float64"),
        },
    }
    for table, columns in documented.items():
        frame = read_metrics(tmp_path / "metrics", table)
        assert {k: str(v) for k, v in frame.dtypes.items()} == columns, table
    assert len(read_metrics(tmp_path / "metrics", "layers")) == 3 * 2
    assert len(read_metrics(tmp_path / "metrics", "time")) == 3 * 4


def test_frames_needs_the_in_memory_sink(tmp_path) -> None:
    probe = GradientProbe(mlp(), sink=MetricsWriter(tmp_path))
    with pytest.raises(TypeError):
        probe.frames()


# -- theory ------------------------------------------------------------------------------------


def deep_mlp(activation: type[nn.Module], depth: int = 16, width: int = 32) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def first_over_last_grad_norm(model: nn.Module) -> float:
    probe = GradientProbe(model)
    x, y = torch.randn(128, 32), torch.randint(0, 10, (128,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    probe.capture(0, loss)
    probe.commit()
    grad_norm = probe.frames()["layers"].grad_norm.to_numpy()
    return float(grad_norm[0] / grad_norm[-1])


def test_deep_sigmoid_mlp_with_default_init_has_vanishing_gradients() -> None:
    assert first_over_last_grad_norm(deep_mlp(nn.Sigmoid)) < 1e-2


def test_deep_relu_mlp_with_he_init_keeps_gradients_within_10x() -> None:
    model = deep_mlp(nn.ReLU)
    for module in model:
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    assert 0.1 < first_over_last_grad_norm(model) < 10


def test_bfloat16_autocast_outputs_are_measured_in_float32() -> None:
    model, x = mlp(), torch.randn(64, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model[:4](x)
        probe = GradientProbe(model)
        out = model(x)
    loss = loss_of(out.float())
    loss.backward()
    probe.capture(0, loss)
    probe.commit()
    y = hidden.detach().float()
    assert y.dtype == torch.float32 and hidden.dtype == torch.bfloat16
    assert recorded(probe, "act_std")["2"] == pytest.approx(float(y.std(correction=0)), rel=1e-5)


def test_keep_step_records_an_unprobed_step_with_its_gradients_and_nan_activation_columns():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with GradientProbe(model, every=3) as probe:
        for step in range(2):
            loss = model(torch.randn(5, 4)).sum()
            model.zero_grad()
            loss.backward()
            probe.capture(step, loss)
            if step == 1:  # not probed: kept, as a loop does for a diverging step
                probe.keep_step()
                expected = [float(model[i].weight.grad.double().norm()) for i in (0, 2)]
            probe.commit()
        frames = probe.frames()
    assert frames["steps"]["step"].tolist() == [0, 1]
    kept = frames["layers"][frames["layers"]["step"] == 1]
    assert kept["grad_norm"].tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    for column in ("act_grad_norm", "act_mean", "act_std", "zero_fraction", "dead_units"):
        assert kept[column].isna().all(), column


def test_a_probe_of_weight_gradients_only_leaves_the_forward_without_hooks_after_step_0():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    probe = GradientProbe(model, activations=False, act_grads=False, updates=False, time=False)
    for step in range(2):
        model.zero_grad()
        model(torch.randn(3, 4)).sum().backward()
        probe.capture(step, 0.0)
        probe.commit()
    assert all(not module._forward_hooks for module in model.modules())
    assert probe.layer_table()["name"].tolist() == ["0", "2"]
    assert probe.frames()["layers"]["step"].tolist() == [0, 0, 1, 1]


def test_frames_are_snapshots_that_later_steps_do_not_change() -> None:
    torch.manual_seed(0)
    model, x = mlp(), torch.randn(4, 6)
    probe = GradientProbe(model)
    for step in range(3):
        train_step(model, probe, x, step)
    before = probe.frames()
    kept = before["layers"].copy()
    for step in range(3, 600):  # past the in-memory columns' first capacity
        train_step(model, probe, x, step)
    after = probe.frames()
    assert before["layers"].equals(kept)
    assert after["steps"].step.tolist() == list(range(600))
    assert after["layers"].head(len(kept)).equals(kept)
