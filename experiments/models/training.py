"""A small, resumable classifier training loop for CPU budgets (and GPUs when a user has one).

Reproducible to the bit: every random choice is derived from ``(cfg.seed, step)`` (batch order and augmentation
from their own generators; dropout, drop-path and random dataset transforms from the global torch, numpy and
``random`` generators, reseeded every step), so two runs, or a run killed and resumed from its checkpoint, see
the same batches, masks and draws. Training runs under :func:`reproducible` (deterministic kernels, cuDNN
autotuning off). Checkpoints are plain tensors and builtins written with ``torch.save`` and read back with
``torch.load(weights_only=True)``.

Two things stay with the caller: seed the model initialisation (``torch.manual_seed`` before ``build_model``), and
fix the CPU thread count (``torch.set_num_threads``): float sums are split into one partial sum per thread, so the
weights depend on the count (the workflow fixes it per rule in ``workflow/scripts/_common.py``).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset, default_collate
from tqdm.auto import tqdm

from experiments.atomic import atomic_path

logger = logging.getLogger(__name__)

_BOOKKEEPING_FIELDS = frozenset({"checkpoint_every", "log_every"})  # may change between resumes
CUBLAS_WORKSPACE = ":4096:8"
"""``CUBLAS_WORKSPACE_CONFIG`` that makes cuBLAS deterministic (CUDA >= 10.2); read when cuBLAS starts, so set it
before the first matmul on a GPU (the workflow sets it before torch is imported)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; all of them except bookkeeping must match on resume.

    Attributes:
        steps: Total optimiser steps (not epochs: budgets are easier to reason about in steps on a CPU).
        batch_size: Images per step; the last partial batch of each epoch is dropped.
        lr: Peak learning rate, reached after ``warmup_steps`` and then decayed to 0 by a cosine.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay.
        seed: Seeds batch order and augmentation.
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov momentum).
        momentum: SGD momentum (ignored by AdamW).
        label_smoothing: Passed to the cross-entropy loss.
        warmup_steps: Linear warm-up length.
        flip: Random horizontal flips.
        crop_padding: Random translation by up to this many pixels (replicate-padded crop); 0 disables.
        checkpoint_every: Save a checkpoint every this many steps (and always at the end).
        log_every: Log the running loss every this many steps.
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    label_smoothing: float = 0.0
    warmup_steps: int = 0
    flip: bool = False
    crop_padding: int = 0
    checkpoint_every: int = 500
    log_every: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("steps, batch_size, checkpoint_every and log_every must be positive")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in 0..steps-1, got {self.warmup_steps}")

    def lr_at(self, step: int) -> float:
        """Learning rate for 0-based ``step``: linear warm-up, then cosine decay to 0 at ``steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / (self.steps - self.warmup_steps)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train_classifier` did.

    Attributes:
        steps: Steps completed in total (including those before a resume).
        losses: Training loss of every step, in order (restored from the checkpoint on resume).
        resumed_from: Step the run resumed from (0 for a fresh run).
        seconds: Wall time of this call.
        steps_per_second: Steps of this call per second (0 when nothing was left to train).
    """

    steps: int
    losses: tuple[float, ...]
    resumed_from: int
    seconds: float
    steps_per_second: float

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 50 steps (less noisy than the last step's)."""
        tail = self.losses[-50:]
        return float(np.mean(tail)) if tail else float("nan")


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed the global generators a model or dataset may draw from: torch (CPU and every GPU), numpy, ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def reproducible(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Seed every global generator and choose deterministic kernels inside the block; restore all of it after.

    Inside: ``torch.use_deterministic_algorithms(True)``, cuDNN deterministic with autotuning off (the fastest
    algorithm is chosen by timing, so it changes between runs), ``CUBLAS_WORKSPACE_CONFIG`` set if unset. On the CPU
    an op without a deterministic kernel raises; on a GPU it warns instead, because common backward kernels
    (adaptive average pooling, interpolation) have none and a GPU run should not stop for them. The caller's
    generator states, determinism flags and environment are restored on exit, so training leaves no trace on them.

    Args:
        seed: Seeds torch, numpy and ``random`` at entry.
        device: Where the block computes; its generator (for a GPU) is saved and restored too.
    """
    device = torch.device(device)
    gpu = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=gpu, device_type="cuda"):
        try:
            if workspace is None:
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
            torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            seed_everything(seed)
            yield
        finally:
            torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]
            if workspace is None:
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
            random.setstate(py_state)
            np.random.set_state(np_state)


def _get_batch(dataset: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, TensorDataset):  # fast path: slice the in-memory tensors
        x, y = dataset.tensors[0][idx], dataset.tensors[1][idx]
    else:
        x, y = default_collate([dataset[i] for i in idx.tolist()])[:2]
    return x, y


def _augment(x: torch.Tensor, cfg: TrainConfig, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(_derived_seed(cfg.seed, step, 1))
    if cfg.flip:
        mask = (torch.rand(len(x), generator=gen) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    if cfg.crop_padding:
        p, (h, w) = cfg.crop_padding, x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="replicate")
        offsets = torch.randint(0, 2 * p + 1, (len(x), 2), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])
    return x


class _BatchOrder:
    """Per-epoch permutations seeded by ``(seed, epoch)``: step ``k`` always gets the same indices."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n == 0:
            raise ValueError("the training dataset is empty")
        self.n, self.batch_size, self.seed = n, min(batch_size, n), seed
        self.per_epoch = n // self.batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def indices(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(_derived_seed(self.seed, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _comparable(cfg_dict: dict) -> dict:
    return {k: v for k, v in cfg_dict.items() if k not in _BOOKKEEPING_FIELDS}


def _save_checkpoint(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, losses: list[float], cfg: TrainConfig
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "losses": torch.tensor(losses, dtype=torch.float64),
        "config": asdict(cfg),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    logger.debug("checkpoint at step %d written to %s", step, path)


def _load_checkpoint(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig
) -> tuple[int, list[float]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if _comparable(state["config"]) != _comparable(asdict(cfg)):
        raise ValueError(
            f"checkpoint {path} was written by a run with a different TrainConfig:\n  checkpoint: "
            f"{_comparable(state['config'])}\n  now:        {_comparable(asdict(cfg))}\n"
            "Pass the same config to resume, or delete the checkpoint to start over."
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["step"]), state["losses"].tolist()


def train_classifier(
    model: nn.Module,
    train_dataset: Dataset,
    cfg: TrainConfig,
    checkpoint_path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``model`` in place with cross-entropy, a cosine schedule and optional flips/crops.

    The loop runs under :func:`reproducible`: the same model, data, config and CPU thread count give bitwise-equal
    weights in any process, resumed or not. The caller's random states and determinism flags are restored after.

    Args:
        model: Classifier returning logits ``[B, num_classes]``.
        train_dataset: Map-style dataset of ``(image, label)``; a ``TensorDataset`` is sliced directly.
        cfg: Hyper-parameters.
        checkpoint_path: If given, resume from this file when it exists, save to it every
            ``cfg.checkpoint_every`` steps and at the end (atomically).
        device: Where to train; default: where the model's parameters are.

    Returns:
        A :class:`TrainResult`. The model is left in eval mode.

    Raises:
        ValueError: If the checkpoint was written with a different config.
        FloatingPointError: If the loss becomes NaN or infinite (lower ``cfg.lr``).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    opt = _make_optimizer(model, cfg)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    start, losses = 0, []
    if ckpt is not None and ckpt.is_file():
        start, losses = _load_checkpoint(ckpt, model, opt, cfg)
        logger.info("resuming from %s at step %d of %d", ckpt, start, cfg.steps)
    order = _BatchOrder(len(train_dataset), cfg.batch_size, cfg.seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    model.train()
    t0 = time.perf_counter()
    with (
        reproducible(cfg.seed, device),
        tqdm(total=cfg.steps, initial=start, desc="train", disable=None, leave=False) as bar,
    ):
        for step in range(start, cfg.steps):
            seed_everything(_derived_seed(cfg.seed, step, 2))  # dropout & co. depend on (seed, step) alone
            x, y = _get_batch(train_dataset, order.indices(step))
            x = _augment(x, cfg, step) if cfg.flip or cfg.crop_padding else x
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(step)
            loss = loss_fn(model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower cfg.lr (now {cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.update(1)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                recent = float(np.mean(losses[-cfg.log_every :]))
                bar.set_postfix(loss=f"{recent:.3f}")
                logger.info("step %d/%d loss %.4f lr %.2e", done, cfg.steps, recent, cfg.lr_at(step))
            if ckpt is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                _save_checkpoint(ckpt, model, opt, done, losses, cfg)
    seconds = time.perf_counter() - t0
    model.eval()
    trained = cfg.steps - start
    return TrainResult(
        steps=cfg.steps,
        losses=tuple(losses),
        resumed_from=start,
        seconds=seconds,
        steps_per_second=trained / seconds if trained > 0 and seconds > 0 else 0.0,
    )


@torch.inference_mode()
def evaluate_accuracy(
    model: nn.Module, dataset: Dataset, batch_size: int = 512, *, device: str | torch.device | None = None
) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` in eval mode (the model's previous mode is restored)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, n = 0, len(dataset)
    try:
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            x, y = _get_batch(dataset, idx)
            correct += int((model(x.to(device)).argmax(dim=1).cpu() == y).sum())
    finally:
        model.train(was_training)
    return correct / n if n else float("nan")
