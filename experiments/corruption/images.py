"""The corrupted held-out set: a fixed subset of held-out images under every corruption and severity, cached.

Images come from the held-out split only (never the calibration split, which defines DeepDrift's reference and
fits the baselines). Each corrupted copy is one ``.npy`` in the cache folder, written atomically by
:func:`experiments.data.cached_corruption`; a JSON manifest (written last, atomically) lists them, so the manifest
existing means the whole set is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from experiments.atomic import atomic_path
from experiments.config import ConfigError
from experiments.corruption.config import CorruptionConfig
from experiments.data import DataSpec, cached_corruption, corruption_family, load_split
from experiments.data.corruptions import cache_key
from experiments.data.tensors import pad_images

logger = logging.getLogger(__name__)


def heldout_subset(data: DataSpec, n_images: int, seed: int) -> np.ndarray:
    """Sorted indices (into the official test split) of ``n_images`` random held-out images."""
    splits = data.splits()
    if n_images > len(splits.heldout):
        raise ValueError(f"n_images {n_images} exceeds the held-out split ({len(splits.heldout)}); lower it")
    rng = np.random.default_rng([seed, 4])
    return np.sort(rng.choice(splits.heldout, size=n_images, replace=False))


def test_split_images(data: DataSpec, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clean uint8 images (at least 32x32) and labels of the official test split at ``indices``."""
    images, labels = load_split(data, "test")
    return pad_images(images[indices], 32), np.asarray(labels[indices])


def _cifar10c_entry(images_root: Path, cache_dir: Path, name: str, severity: int, indices: np.ndarray) -> Path:
    from experiments.corruption.cifar import cifar10c_images

    digest = hashlib.sha256(np.ascontiguousarray(indices).data).hexdigest()[:16]
    path = cache_dir / f"cifar10c-{name}-s{severity}-{digest}.npy"
    if not path.is_file():
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, cifar10c_images(images_root, name, severity, indices), allow_pickle=False)
    return path


def build_corrupted_set(
    data: DataSpec, cfg: CorruptionConfig, cache_dir: str | Path, manifest_out: str | Path
) -> dict[str, Any]:
    """Corrupt the held-out subset with every configured corruption and severity; write the manifest.

    Args:
        data: the images (splits, dataset).
        cfg: the study's settings.
        cache_dir: folder of the ``.npy`` files (re-used across runs: a re-run only reads them).
        manifest_out: JSON listing every file, the image indices and the seed.
    """
    if cfg.source == "cifar10c" and data.dataset != "cifar10":
        raise ConfigError(
            f"corruption.source='cifar10c' needs data.dataset: cifar10, got {data.dataset!r}; use source: generate"
        )
    indices = heldout_subset(data, cfg.n_images, cfg.seed)
    images, _ = test_split_images(data, indices)
    cache_dir = Path(cache_dir)
    entries = []
    for name in tqdm(cfg.corruptions, desc="corruptions", disable=None):
        for severity in cfg.severities:
            if cfg.source == "cifar10c":
                path = _cifar10c_entry(cache_dir.parent / "cifar10c", cache_dir, name, severity, indices)
            else:
                cached_corruption(images, name, severity, cfg.seed, cache_dir, progress=False)
                path = cache_dir / cache_key(images, name, severity, cfg.seed)
            entries.append(
                {"corruption": name, "family": corruption_family(name), "severity": int(severity), "file": str(path)}
            )
        logger.info("corrupted %d images with %s at severities %s", len(images), name, list(cfg.severities))
    manifest = {
        "dataset": data.dataset,
        "source": cfg.source,
        "seed": cfg.seed,
        "indices": indices.tolist(),
        "entries": entries,
    }
    with atomic_path(manifest_out) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest written by :func:`build_corrupted_set` (and check its files exist)."""
    manifest = json.loads(Path(path).read_text())
    missing = [e["file"] for e in manifest["entries"] if not Path(e["file"]).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} corrupted image files of {path} are missing (e.g. {missing[0]}); "
            "delete the manifest and rerun the corruption_images rule"
        )
    return manifest


def load_entry(entry: Mapping[str, Any]) -> np.ndarray:
    """The uint8 corrupted images of one manifest entry."""
    return np.load(entry["file"], allow_pickle=False)
