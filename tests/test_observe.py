"""Passive monitoring: the user's own forward pass is scored, with no second forward."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepdrift import DeepDriftMonitor, DeepDriftWarning


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)
    )


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture
def monitor() -> DeepDriftMonitor:
    g = torch.Generator().manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        return DeepDriftMonitor(_mlp().eval(), n_null_draws=1000).calibrate(torch.randn(1024, 8, generator=g).split(64))


def test_observe_scores_the_users_forward_like_step(monitor):
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(2)) + 0.5
    expected = {name: s.drift for name, s in monitor.score(x).items()}
    calls = []
    monitor.model.register_forward_pre_hook(lambda *_: calls.append(1))
    with monitor.observe(batch_size=32) as seen:
        logits = monitor.model(x)
    assert len(calls) == 1  # one forward: the user's
    assert {n: d.drift for n, d in seen.status.items()} == pytest.approx(expected)
    assert logits.shape == (32, 3) and len(monitor.history) == 1 and _hooks(monitor.model) == 0


def test_observe_inside_a_training_loop_with_gradients(monitor):
    model = monitor.model.train()  # no dropout or batch norm: training mode computes the same features
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(3)
    drifts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepDriftWarning)
        for step in range(6):
            x = torch.randn(32, 8, generator=g) + (3.0 if step >= 3 else 0.0)
            with monitor.observe(batch_size=32) as seen:
                loss = model(x).square().mean()
            loss.backward()  # the graph is intact: features were detached copies
            optimiser.step()
            optimiser.zero_grad()
            drifts.append(max(d.drift for d in seen.status.values()))
    assert max(drifts[:3]) < 4 and min(drifts[3:]) > 10
    assert any(d.state == "ALERT" for d in seen.status.values())
    assert _hooks(model) == 0


def test_observe_under_inference_mode(monitor):
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode(), monitor.observe(batch_size=16) as seen:
        monitor.model(x)
    assert np.isfinite([d.drift for d in seen.status.values()]).all()


def test_an_error_inside_the_block_leaves_no_hooks_and_no_step(monitor):
    with pytest.raises(ZeroDivisionError), monitor.observe():
        monitor.model(torch.randn(4, 8))
        _ = 1 / 0
    assert _hooks(monitor.model) == 0 and len(monitor.history) == 0


def test_step_inside_observe_is_refused(monitor):
    with pytest.raises(RuntimeError, match="inside its own"), monitor.observe():
        monitor.step(torch.randn(4, 8))


def test_observing_a_training_mode_model_warns(monitor):
    monitor.model.train()
    with pytest.warns(DeepDriftWarning, match="training mode"), monitor.observe():
        monitor.model(torch.randn(4, 8))
