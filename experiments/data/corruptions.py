"""ImageNet-C style corruptions (19 types x 5 severities) for uint8 image batches, seeded and disk-cached.

Wraps ``imagecorruptions`` from the PyPI package ``imagecorruptions-imaug`` (the original ``imagecorruptions``
1.1.2 is broken with current numpy/scikit-image). That library draws from numpy's *global* RNG (and, for
``glass_blur`` / ``impulse_noise``, from a ``seed`` argument), so every image gets its own seed derived from
``(seed, index in the batch)``, and the caller's global RNG state is restored afterwards.

Grey images: the library always works on 3 channels (it stacks a grey image three times). We convert its
output back the way a grey sensor would see it: for the per-pixel noises (gaussian, shot, impulse, speckle)
we keep channel 0, which is exactly one draw of the noise at the calibrated strength (averaging three
independent draws would weaken it by sqrt(3) and turn salt-and-pepper into grey levels); for everything else
we take the ITU-R BT.601 luma, which equals every channel for the purely spatial corruptions and renders the
coloured overlays (frost, spatter, saturate) as brightness. Consequence: ``saturate`` is the identity on grey
images at severities 1-3 (grey pixels have no saturation to scale) and only darkens them at 4-5.

Measured cost on one CPU core, 32x32 images: 19-33 ms per image for all 19 corruptions at one severity
(frost 6-15 ms, as it reads and resizes a large texture file on every call; zoom_blur 3-4 ms; the rest
0.2-2.7 ms each), so all 19 x 5 severities of the 10k test images take about half an hour: use
:func:`cached_corruption`. The first ``glass_blur`` call in a process spends ~4 s compiling its numba kernel,
and severity 3 compiles it once more (its parameter tuple is all-int).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from experiments.atomic import atomic_path
from experiments.config import ConfigError

logger = logging.getLogger(__name__)

FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}
"""The four ImageNet-C families; each extra (validation) corruption joins the family it belongs to."""

COMMON: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
"""The 15 standard ImageNet-C corruptions, in the library's order."""
EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 extra ("validation") corruptions of Hendrycks & Dietterich (2019)."""
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

_PER_PIXEL_NOISE = frozenset(FAMILIES["noise"])
_SEEDED_BY_ARGUMENT = frozenset({"glass_blur", "impulse_noise"})
_LUMA = np.array([0.299, 0.587, 0.114])
_CACHE_FORMAT = 1  # bump when the output of corrupt_images changes for the same inputs


def corruption_names(subset: str = "all") -> tuple[str, ...]:
    """Corruption names in ``subset``: ``"all"`` (19), ``"common"`` (15), ``"extra"`` (4) or a family name."""
    if subset == "all":
        return COMMON + EXTRA
    if subset == "common":
        return COMMON
    if subset == "extra":
        return EXTRA
    if subset in FAMILIES:
        return FAMILIES[subset]
    raise ValueError(f"unknown subset {subset!r}; use 'all', 'common', 'extra' or one of {sorted(FAMILIES)}")


def _check_name(name: str) -> None:
    if name not in COMMON + EXTRA:
        close = difflib.get_close_matches(name, COMMON + EXTRA, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " See corruption_names()."
        raise ValueError(f"unknown corruption {name!r}.{hint}")


def config_corruptions(value: object, path: str, subsets: bool = False) -> object:
    """A config's list of corruption names, checked at load time (``subsets``: a subset name is accepted too).

    Raises:
        ConfigError: an unknown corruption or subset name (with close matches).
    """
    if subsets and isinstance(value, str):
        try:
            return corruption_names(value)
        except ValueError as err:
            raise ConfigError(f"{path}: {err}") from err
    if isinstance(value, (list, tuple)):
        for i, name in enumerate(value):
            try:
                if isinstance(name, str):  # other types fail the type check that follows
                    _check_name(name)
            except ValueError as err:
                raise ConfigError(f"{path}[{i}]: {err}") from err
    return value


def config_corruption_subsets(value: object, path: str) -> object:
    """:func:`config_corruptions` that also accepts a subset name (``all``, ``common``, ``extra``, a family)."""
    return config_corruptions(value, path, subsets=True)


def corruption_family(name: str) -> str:
    """Family (``noise``, ``blur``, ``weather`` or ``digital``) of a corruption, for per-family tables."""
    _check_name(name)
    return next(family for family, names in FAMILIES.items() if name in names)


def _image_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def corrupt_images(
    images: np.ndarray, name: str, severity: int, seed: int = 0, *, progress: bool | None = None
) -> np.ndarray:
    """Corrupt a batch of uint8 images; the same ``(images, name, severity, seed)`` gives the same output.

    Image ``i`` is corrupted with a seed derived from ``(seed, i)`` only, so its random draws do not depend
    on the other images in the batch or on the corruption and severity (common random numbers make
    severities comparable).

    Args:
        images: uint8 ``[N, H, W]`` (grey), ``[N, H, W, 1]`` or ``[N, H, W, 3]``, with ``H, W >= 32``
            (pad Fashion-MNIST first, e.g. :func:`experiments.data.tensors.pad_images`).
        name: One of :func:`corruption_names`.
        severity: 1 (mild) to 5 (severe).
        seed: Non-negative integer seed.
        progress: Show a progress bar; ``None`` shows it only on a terminal.

    Returns:
        A new uint8 array with the shape of ``images``.
    """
    _check_name(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise ValueError(f"expected uint8 images [N, H, W] or [N, H, W, 1|3], got {images.dtype} {images.shape}")
    if min(images.shape[1:3]) < 32:
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]} but the corruptions need at least 32x32; "
            "pad them first with experiments.data.tensors.pad_images(images, 32)"
        )
    grey = images.ndim == 3 or images.shape[3] == 1
    out = np.empty_like(images)
    disable = None if progress is None else not progress
    state = np.random.get_state()
    try:
        for i in tqdm(range(len(images)), desc=f"{name} s{severity}", disable=disable, leave=False):
            rgb = images[i] if not grey else np.repeat(images[i].reshape(*images.shape[1:3], 1), 3, axis=2)
            result = _corrupt_one(rgb, name, severity, _image_seed(seed, i))
            if grey:
                if name in _PER_PIXEL_NOISE:
                    result = result[..., 0]
                else:
                    result = np.clip(np.rint(result.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)
            out[i] = result.reshape(out.shape[1:])
    finally:
        np.random.set_state(state)
    return out


def _corrupt_one(rgb: np.ndarray, name: str, severity: int, image_seed: int) -> np.ndarray:
    """One ``[H, W, 3]`` uint8 image through the library's corruption function, with NaNs repaired.

    We call the function ourselves rather than ``imagecorruptions.corrupt`` because the latter casts to
    uint8 before we can see a NaN: ``spatter`` at severity 1 divides 0 by 0 when no "liquid" survives its
    threshold (about 2.5% of 32x32 Fashion-MNIST images), which ``corrupt`` turns into a black image. No
    liquid means no spatter, so non-finite pixels get their clean value back.
    """
    from imagecorruptions import corruption_dict  # heavy import (cv2, numba, skimage): only when needed
    from PIL import Image

    np.random.seed(image_seed)
    kwargs = {"seed": image_seed} if name in _SEEDED_BY_ARGUMENT else {}
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.asarray(corruption_dict[name](Image.fromarray(rgb), severity, **kwargs), dtype=np.float64)
    if not np.isfinite(result).all():
        logger.debug("%s s%d produced non-finite pixels; keeping the clean values there", name, severity)
        result = np.where(np.isfinite(result), result, rgb)
    return np.clip(result, 0, 255).astype(np.uint8)  # truncation, as imagecorruptions.corrupt does


def _library_version() -> str:
    try:
        return version("imagecorruptions-imaug")
    except PackageNotFoundError:
        return "unknown"


def cache_key(images: np.ndarray, name: str, severity: int, seed: int) -> str:
    """Cache file name: readable parameters plus a digest of the images and the library version."""
    digest = hashlib.sha256()
    digest.update(f"{_CACHE_FORMAT}|{_library_version()}|{images.dtype.str}|{images.shape}|".encode())
    digest.update(np.ascontiguousarray(images).data)
    return f"{name}-s{severity}-seed{seed}-{digest.hexdigest()[:20]}.npy"


def cached_corruption(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    cache_dir: str | os.PathLike[str],
    *,
    progress: bool | None = None,
) -> np.ndarray:
    """:func:`corrupt_images`, memoised on disk as a plain ``.npy`` file (never pickle).

    The key covers the image bytes, so a different subset or order never hits a stale entry. Files are
    written atomically, so concurrent jobs at worst compute the same entry twice.
    """
    path = Path(cache_dir) / cache_key(images, name, severity, seed)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            logger.warning("ignoring unreadable cache file %s (%s); recomputing", path, err)
        else:
            if cached.shape == images.shape and cached.dtype == np.uint8:
                return cached
            logger.warning("cache file %s holds %s %s; recomputing", path, cached.dtype, cached.shape)
    result = corrupt_images(images, name, severity, seed, progress=progress)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, result, allow_pickle=False)
    return result
