"""The transformers callback adds per-layer drift to real Trainer evaluations: small when clean, large on shift."""

from __future__ import annotations

import importlib
import logging
import re
import sys

import pytest
import torch
from library_fixtures import clean_batches
from torch.utils.data import DataLoader, Dataset

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

import deepdrift.integrations  # noqa: E402
from deepdrift import DeepDriftMonitor, DeepDriftWarning, NotCalibratedError  # noqa: E402
from deepdrift.integrations.huggingface import DeepDriftTrainerCallback  # noqa: E402


def _taps(model: torch.nn.Module) -> list[str]:
    """Embeddings, every block and the last norm/pooler, under either naming (transformers 4: ``encoder.layer.0``,
    5: ``layers.0``)."""
    pattern = r"(vit|bert)\.(embeddings|(encoder\.)?layers?\.\d+|layernorm|pooler)"
    return [name for name, _ in model.named_modules() if re.fullmatch(pattern, name)]


class DictDataset(Dataset):
    """Samples as Hugging Face datasets give them: one dict of tensors per sample."""

    def __init__(self, columns: dict[str, torch.Tensor]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {key: column[i] for key, column in self.columns.items()}


def _images(n_batches: int, seed: int, scale: float = 1.0) -> DictDataset:
    x = torch.cat(clean_batches(n_batches, seed=seed))[:, :1] * scale  # one channel, 16x16
    return DictDataset({"pixel_values": x, "labels": (x.mean(dim=(1, 2, 3)) > 0).long()})


def _vit() -> ViTForImageClassification:
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    return ViTForImageClassification(config).eval()


def _args(tmp_path, **overrides) -> TrainingArguments:
    kwargs = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        per_device_eval_batch_size=16,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return TrainingArguments(**{**kwargs, **overrides})


def test_evaluate_adds_drift_to_metrics_and_log_history(tmp_path):
    model = _vit()
    monitor = DeepDriftMonitor(model, layers=_taps(model), n_null_draws=500)
    monitor.calibrate(DataLoader(_images(40, seed=1), batch_size=16))
    callback = DeepDriftTrainerCallback(monitor)
    trainer = Trainer(model=model, args=_args(tmp_path), eval_dataset=_images(4, seed=2), callbacks=[callback])

    clean = trainer.evaluate()
    assert len(monitor.layer_names) == 4
    assert {f"eval_deepdrift_drift/{name}" for name in monitor.layer_names} <= set(clean)
    assert clean["eval_deepdrift_max_drift"] < 3.0 and clean["eval_deepdrift_state"] == 0
    assert clean["eval_deepdrift_alerts"] == 0 and "eval_loss" in clean
    assert trainer.state.log_history[-1]["eval_deepdrift_max_drift"] == clean["eval_deepdrift_max_drift"]

    both = trainer.evaluate({"clean": _images(4, seed=3), "shifted": _images(4, seed=3, scale=4.0)})
    assert both["eval_clean_deepdrift_max_drift"] < 3.0 and both["eval_clean_deepdrift_state"] == 0
    assert both["eval_shifted_deepdrift_max_drift"] > 10.0 and both["eval_shifted_deepdrift_state"] == 2
    assert both["eval_shifted_deepdrift_alerts"] >= 1 and callback.alerts
    assert "eval_shifted_deepdrift_max_drift" in trainer.state.log_history[-1]


def test_training_recalibrates_before_each_evaluation(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="deepdrift.integrations.huggingface")
    model = _vit().train()
    monitor = DeepDriftMonitor(model, layers=_taps(model), n_null_draws=500)
    callback = DeepDriftTrainerCallback(monitor, calibrate_loader=DataLoader(_images(40, seed=1), batch_size=16))
    args = _args(
        tmp_path,
        max_steps=4,
        eval_strategy="steps",
        eval_steps=2,
        logging_strategy="no",
        learning_rate=1e-3,
        metric_for_best_model="deepdrift_max_drift",
        greater_is_better=False,
        save_strategy="steps",  # transformers 4.46 tracks the best metric only when it saves
        save_steps=2,
        save_only_model=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=_images(4, seed=1), eval_dataset=_images(3, seed=2), callbacks=[callback]
    )
    trainer.train()
    evaluations = [e for e in trainer.state.log_history if "eval_deepdrift_max_drift" in e]
    assert [e["step"] for e in evaluations] == [2, 4]
    assert caplog.text.count("calibrating the drift monitor") == 2  # the weights moved between evaluations
    assert all(e["eval_deepdrift_max_drift"] < 3.0 and e["eval_deepdrift_state"] == 0 for e in evaluations)
    assert trainer.state.best_metric == min(e["eval_deepdrift_max_drift"] for e in evaluations)  # usable for "best"


def test_a_calibration_older_than_the_weights_warns(tmp_path):
    model = _vit().train()
    monitor = DeepDriftMonitor(model, layers=_taps(model), n_null_draws=500)
    monitor.calibrate(DataLoader(_images(40, seed=1), batch_size=16))
    args = _args(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, logging_strategy="no")
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_images(2, seed=1),
        eval_dataset=_images(1, seed=2),
        callbacks=[DeepDriftTrainerCallback(monitor)],
    )
    with pytest.warns(DeepDriftWarning, match="training has moved the weights"):
        trainer.train()


def test_token_batches_go_to_forward_as_keywords(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(config).eval()
    taps = _taps(model)
    assert len(taps) == 4

    def tokens(n: int, low: int, high: int, seed: int) -> DictDataset:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(low, high, (n, 12), generator=g)
        return DictDataset({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[:, 0] % 2})

    monitor = DeepDriftMonitor(model, layers=taps, n_null_draws=500)
    monitor.calibrate(DataLoader(tokens(640, 5, 60, seed=1), batch_size=16))
    callback = DeepDriftTrainerCallback(monitor, eval_batches=3)
    trainer = Trainer(model=model, args=_args(tmp_path), callbacks=[callback])
    clean = trainer.evaluate(tokens(80, 5, 60, seed=2))
    assert len(monitor.history.steps) == 3  # eval_batches caps the extra forward passes
    shifted = trainer.evaluate(tokens(80, 60, 100, seed=2))  # words never seen in calibration
    assert clean["eval_deepdrift_max_drift"] < 3.0
    assert shifted["eval_deepdrift_max_drift"] > 10.0 and shifted["eval_deepdrift_state"] == 2


def test_uncalibrated_monitor_fails_with_the_fix(tmp_path):
    model = _vit()
    callback = DeepDriftTrainerCallback(DeepDriftMonitor(model, layers=_taps(model)))
    trainer = Trainer(model=model, args=_args(tmp_path), eval_dataset=_images(1, seed=2), callbacks=[callback])
    with pytest.raises(NotCalibratedError, match="calibrate_loader"):
        trainer.evaluate()


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import of a None entry raises ImportError
    monkeypatch.delitem(sys.modules, "deepdrift.integrations.huggingface")
    monkeypatch.setattr(deepdrift.integrations, "huggingface", deepdrift.integrations.huggingface)
    with pytest.raises(ImportError, match=r"deepdrift\[huggingface\]"):
        importlib.import_module("deepdrift.integrations.huggingface")
