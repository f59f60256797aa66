"""The Lightning callback logs per-layer drift from real fit/validate/predict runs: small when clean, large on shift."""

from __future__ import annotations

import csv
import importlib
import logging
import sys
from pathlib import Path

import pytest
import torch
from library_fixtures import clean_batches, make_small_cnn
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

import deepdrift.integrations  # noqa: E402
from deepdrift import DeepDriftMonitor, DeepDriftWarning, NotCalibratedError  # noqa: E402
from deepdrift.integrations.lightning import DeepDriftCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated"),  # Lightning vs torch
]


class LitCNN(pl.LightningModule):
    """A small CNN classifier, trained the usual Lightning way."""

    def __init__(self) -> None:
        super().__init__()
        self.net = make_small_cnn().train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0]).argmax(1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader(n_batches: int, seed: int, scale: float = 1.0) -> DataLoader:
    x = torch.cat(clean_batches(n_batches, seed=seed)) * scale
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _trainer(tmp_path: Path, callback: DeepDriftCallback, max_epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=4,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _rows(trainer: pl.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def lit() -> LitCNN:
    torch.manual_seed(0)
    return LitCNN()


def test_fit_recalibrates_and_logs_small_drift_then_shift_alerts(lit, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="deepdrift.integrations.lightning")
    monitor = DeepDriftMonitor(lit.net, n_null_draws=500)
    callback = DeepDriftCallback(monitor, calibrate_loader=_loader(40, seed=1))
    trainer = _trainer(tmp_path, callback)
    trainer.fit(lit, _loader(4, seed=1), _loader(4, seed=2))

    assert caplog.text.count("calibrating the drift monitor") == 2  # before each epoch's validation: new weights
    rows = [r for r in _rows(trainer) if r.get("deepdrift/max_drift")]
    assert len(rows) == 2  # one row per validation epoch, sanity check skipped
    for row in rows:
        drift = [float(row[f"deepdrift/drift/{name}"]) for name in monitor.layer_names]
        assert max(abs(d) for d in drift) < 3.0, row
        assert float(row["deepdrift/alerts"]) == 0
        assert all(float(row[f"deepdrift/state/{name}"]) == 0 for name in monitor.layer_names)
    assert callback.alerts == []

    # same weights, so no recalibration; a brightness/contrast shift alerts
    (clean,) = trainer.validate(lit, _loader(4, seed=3))
    (shifted,) = trainer.validate(lit, _loader(4, seed=3, scale=4.0))
    assert caplog.text.count("calibrating the drift monitor") == 2
    assert clean["deepdrift/max_drift"] < 3.0 and clean["deepdrift/alerts"] == 0
    assert shifted["deepdrift/max_drift"] > 10.0
    assert shifted["deepdrift/alerts"] >= 1 and max(shifted[f"deepdrift/state/{n}"] for n in monitor.layer_names) == 2
    assert callback.alerts and all("ALERT" in str(a) for a in callback.alerts)
    (again,) = trainer.validate(lit, _loader(4, seed=5))  # each pass starts with fresh layer states
    assert again["deepdrift/alerts"] == 0 and max(again[f"deepdrift/state/{n}"] for n in monitor.layer_names) == 0


def test_predict_logs_every_nth_batch_through_the_logger(lit, tmp_path):
    monitor = DeepDriftMonitor(lit, n_null_draws=500)  # the LightningModule itself
    callback = DeepDriftCallback(monitor, log_every_n=2, calibrate_loader=_loader(40, seed=1))
    trainer = _trainer(tmp_path, callback)
    predictions = trainer.predict(lit, _loader(6, seed=4, scale=4.0))
    assert len(predictions) == 6  # the model's own predict_step is untouched
    rows = _rows(trainer)
    assert [int(r["step"]) for r in rows] == [0, 1, 2]  # batches 0, 2, 4
    assert all(float(r["deepdrift/max_drift"]) > 10.0 for r in rows)
    assert sum(float(r["deepdrift/alerts"]) for r in rows) >= 1
    assert {f"deepdrift/drift/{name}" for name in monitor.layer_names} <= set(rows[0])


def test_several_validation_loaders_are_kept_apart(lit, tmp_path):
    monitor = DeepDriftMonitor(lit.net, n_null_draws=500).calibrate(_loader(40, seed=1))
    trainer = _trainer(tmp_path, DeepDriftCallback(monitor))
    results = trainer.validate(lit, [_loader(3, seed=2, scale=4.0), _loader(3, seed=2)])
    logged = {k: v for result in results for k, v in result.items()}
    assert logged["deepdrift/max_drift/dataloader_idx_0"] > 10.0
    assert logged["deepdrift/alerts/dataloader_idx_0"] >= 1
    assert logged["deepdrift/max_drift/dataloader_idx_1"] < 3.0
    assert logged["deepdrift/state/2/dataloader_idx_1"] == 0  # the clean loader starts with fresh states


def test_uncalibrated_monitor_fails_with_the_fix(lit, tmp_path):
    trainer = _trainer(tmp_path, DeepDriftCallback(DeepDriftMonitor(lit.net)))
    with pytest.raises(NotCalibratedError, match="calibrate_loader"):
        trainer.validate(lit, _loader(2, seed=2))


def test_a_calibration_older_than_the_weights_warns(lit, tmp_path):
    monitor = DeepDriftMonitor(lit.net, n_null_draws=500).calibrate(_loader(40, seed=1))
    trainer = _trainer(tmp_path, DeepDriftCallback(monitor), max_epochs=1)
    with pytest.warns(DeepDriftWarning, match="training has moved the weights"):
        trainer.fit(lit, _loader(4, seed=1), _loader(2, seed=2))


def test_arguments_are_checked(lit):
    monitor = DeepDriftMonitor(lit.net)
    with pytest.raises(ValueError, match="choose from"):
        DeepDriftCallback(monitor, stages=("train",))
    with pytest.raises(ValueError, match="log_every_n"):
        DeepDriftCallback(monitor, log_every_n=0)
    with pytest.raises(TypeError, match="DeepDriftMonitor"):
        DeepDriftCallback(lit)


def _reimport(monkeypatch: pytest.MonkeyPatch, hidden: list[str]):
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # import of a None entry raises ImportError
    monkeypatch.delitem(sys.modules, "deepdrift.integrations.lightning")
    monkeypatch.setattr(deepdrift.integrations, "lightning", deepdrift.integrations.lightning)
    return importlib.import_module("deepdrift.integrations.lightning")


def test_falls_back_to_pytorch_lightning(monkeypatch):
    pytorch_lightning = pytest.importorskip("pytorch_lightning")
    module = _reimport(monkeypatch, ["lightning", "lightning.pytorch"])
    assert issubclass(module.DeepDriftCallback, pytorch_lightning.Callback)


def test_missing_lightning_names_the_extra(monkeypatch):
    with pytest.raises(ImportError, match=r"deepdrift\[lightning\]"):
        _reimport(monkeypatch, ["lightning", "lightning.pytorch", "pytorch_lightning"])
