"""DDPM training with EMA, checkpoints along the way, and exact resumption after a killed job.

Every step draws its batch, timesteps and noise from a generator seeded by (seed, step), so a run resumed from a
checkpoint is bit-for-bit the run that was never interrupted (on the same machine and thread count). Files are
safetensors written atomically: EMA weights per checkpoint step, plus one resume state (model, EMA, AdamW moments).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file
from tqdm.auto import tqdm

from experiments.atomic import atomic_path, write_safetensors
from experiments.diffusion.config import TrainSpec, UNetSpec
from experiments.diffusion.model import EMA, build_scheduler, initial_unet

logger = logging.getLogger(__name__)

RESUME_FILE = "resume.safetensors"


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """Where the EMA weights of ``step`` live."""
    return Path(folder) / f"ema_step{step:07d}.safetensors"


def _save(tensors: dict[str, torch.Tensor], path: Path, step: int, fingerprint: str = "") -> None:
    write_safetensors(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        path,
        {"step": str(step), "fingerprint": fingerprint},
    )


def run_fingerprint(images: torch.Tensor, unet: UNetSpec, spec: TrainSpec, seed: int) -> str:
    """What must match for a resume to continue the same run (the step budget may grow; nothing else may change)."""
    recipe = {k: v for k, v in asdict(spec).items() if k not in ("steps", "checkpoint_every")}
    data = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]
    return json.dumps({"unet": asdict(unet), "train": recipe, "seed": seed, "data": data}, sort_keys=True)


def _save_resume(
    folder: Path, step: int, model: UNet2DModel, ema: EMA, opt: torch.optim.Optimizer, fingerprint: str
) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    for index, state in opt.state_dict()["state"].items():
        tensors |= {f"opt.{index}.{k}": torch.as_tensor(v) for k, v in state.items()}
    _save(tensors, folder / RESUME_FILE, step, fingerprint)


def _load_resume(folder: Path, model: UNet2DModel, ema: EMA, opt: torch.optim.Optimizer, fingerprint: str) -> int:
    """Restore the last resume state of the same run; returns its step (0 when there is none or it differs)."""
    path = folder / RESUME_FILE
    if not path.is_file():
        return 0
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("fingerprint") != fingerprint:
        logger.warning(
            "%s belongs to a different configuration; training from scratch (old checkpoints replaced)", path
        )
        for old in folder.glob("ema_step*.safetensors"):
            old.unlink()
        return 0
    step = int(meta["step"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_state = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    opt_state["state"] = state
    opt.load_state_dict(opt_state)
    logger.info("resumed from %s at step %d", path, step)
    return step


def load_checkpoint_weights(path: str | Path, model: UNet2DModel) -> UNet2DModel:
    """Load EMA weights saved by :func:`train_diffusion` into ``model`` (eval mode)."""
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train_diffusion(
    images: torch.Tensor,
    unet: UNetSpec,
    spec: TrainSpec,
    seed: int,
    folder: str | Path,
    manifest: str | Path | None = None,
) -> dict:
    """Train a DDPM on ``images`` (``[N, C, S, S]`` in [-1, 1]); keep EMA checkpoints; resume if possible.

    Args:
        images: the whole training set (small: it stays in memory).
        unet, spec: architecture and recipe.
        seed: seeds the initial weights and every step's batch, timesteps and noise.
        folder: where checkpoints and the resume state live (kept across killed jobs).
        manifest: JSON written last (atomically): checkpoint steps and files, mean training loss per interval.

    Returns:
        The manifest as a dict.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = initial_unet(unet, images.shape[-1], images.shape[1], seed).train()
    scheduler = build_scheduler(spec)
    ema = EMA(model, spec.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    fingerprint = run_fingerprint(images, unet, spec, seed)
    start = _load_resume(folder, model, ema, opt, fingerprint)
    checkpoints = set(spec.checkpoint_steps)
    losses: dict[int, float] = {}
    running, count, began = 0.0, 0, time.perf_counter()
    for step in tqdm(
        range(start + 1, spec.steps + 1),
        desc=f"DDPM N={len(images)} seed={seed}",
        disable=None,
        initial=start,
        total=spec.steps,
    ):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(images), (spec.batch_size,), generator=gen)
        t = torch.randint(0, spec.num_train_timesteps, (spec.batch_size,), generator=gen)
        noise = torch.randn(images[idx].shape, generator=gen)
        loss = torch.nn.functional.mse_loss(model(scheduler.add_noise(images[idx], noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
        ema.update(model)
        running, count = running + loss.item(), count + 1
        if step in checkpoints:
            _save(ema.state_dict(), checkpoint_path(folder, step), step)
            _save_resume(folder, step, model, ema, opt, fingerprint)
            losses[step] = running / count
            running, count = 0.0, 0
    info = {
        "n_train": len(images),
        "seed": seed,
        "steps": spec.steps,
        "resumed_from": start,
        "checkpoints": {str(s): str(checkpoint_path(folder, s)) for s in sorted(checkpoints)},
        "train_loss": {str(k): v for k, v in losses.items()},
        "seconds": time.perf_counter() - began,
    }
    missing = [p for p in info["checkpoints"].values() if not Path(p).is_file()]
    if missing:
        raise RuntimeError(f"checkpoints missing after training: {missing}; delete {folder} and rerun")
    if manifest is not None:
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(info, indent=2))
    logger.info("trained N=%d seed=%d to step %d in %.1f s", len(images), seed, spec.steps, info["seconds"])
    return info
