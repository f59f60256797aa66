"""The CPU training loop learns, checkpoints atomically and resumes to the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from experiments.data import fashion_mnist_dataset
from experiments.models import TrainConfig, build_model, evaluate_accuracy, train_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny() -> TensorDataset:
    return fashion_mnist_dataset("train", indices=np.arange(256))


class Crashing(Dataset):
    """A map-style (non-Tensor) dataset that dies after ``limit`` items, like a killed job."""

    def __init__(self, base: TensorDataset, limit: int) -> None:
        self.base, self.limit, self.served = base, limit, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        self.served += 1
        if self.served > self.limit:
            raise KeyboardInterrupt("simulated kill")
        return self.base[i]


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn")


def test_loss_goes_down_and_accuracy_is_a_fraction(tiny: TensorDataset) -> None:
    model = _model()
    cfg = TrainConfig(steps=40, batch_size=32, lr=3e-3, warmup_steps=2, flip=True, crop_padding=2)
    result = train_classifier(model, tiny, cfg)
    assert result.steps == 40 and len(result.losses) == 40 and result.resumed_from == 0
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    model.train()
    acc = evaluate_accuracy(model, tiny, batch_size=100)
    assert 0.5 < acc <= 1.0 and model.training  # mode restored


def test_resume_matches_uninterrupted_run(tiny: TensorDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=8, batch_size=16, lr=1e-3, checkpoint_every=2)
    reference = _model()
    train_classifier(reference, tiny, cfg)

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_model(), Crashing(tiny, limit=16 * 5 + 3), cfg, ckpt)  # dies during step 5
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4 and list(tmp_path.iterdir()) == [ckpt]

    resumed = _model(seed=1)  # different init: the checkpoint must overwrite it
    result = train_classifier(resumed, tiny, cfg, ckpt)
    assert result.resumed_from == 4 and len(result.losses) == 8
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)

    again = train_classifier(_model(), tiny, cfg, ckpt)  # finished run: nothing left to do
    assert again.resumed_from == 8 and again.steps_per_second == 0.0


def test_resume_with_other_config_says_how_to_fix(tiny: TensorDataset, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    train_classifier(_model(), tiny, TrainConfig(steps=2, batch_size=16), ckpt)
    bookkeeping_only = TrainConfig(steps=2, batch_size=16, log_every=1)
    train_classifier(_model(), tiny, bookkeeping_only, ckpt)
    with pytest.raises(ValueError, match="delete the checkpoint"):
        train_classifier(_model(), tiny, TrainConfig(steps=2, batch_size=16, lr=0.1), ckpt)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam")  # type: ignore[arg-type]
    cfg = TrainConfig(steps=10, lr=1.0, warmup_steps=2)
    assert cfg.lr_at(0) == 0.5 and cfg.lr_at(2) == 1.0 and cfg.lr_at(9) < 0.05
