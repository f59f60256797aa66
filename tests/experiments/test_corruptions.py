"""All 19 corruptions run on 32x32 images, change them, are seeded, and cache to plain .npy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.data import corruptions as C

# Grey pixels have no saturation to scale: saturate is the identity on grey images below severity 4.
UNCHANGED_ON_GREY = {("saturate", 1)}


def test_names_and_families() -> None:
    names = C.corruption_names()
    assert len(names) == 19 and len(set(names)) == 19
    assert len(C.corruption_names("common")) == 15 and C.corruption_names("extra") == C.EXTRA
    assert {C.corruption_family(n) for n in names} == {"noise", "blur", "weather", "digital"}
    assert sorted(n for f in C.FAMILIES for n in C.corruption_names(f)) == sorted(names)
    assert C.corruption_family("glass_blur") == "blur" and C.corruption_family("speckle_noise") == "noise"
    with pytest.raises(ValueError, match="gaussian_noise"):
        C.corruption_family("gausian_noise")


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("name", C.corruption_names())
def test_corruption_changes_images_deterministically(name: str, severity: int, images32: np.ndarray) -> None:
    out = C.corrupt_images(images32, name, severity, seed=7)
    assert out.shape == images32.shape and out.dtype == np.uint8
    changed = not np.array_equal(out, images32)
    assert changed != ((name, severity) in UNCHANGED_ON_GREY)
    np.testing.assert_array_equal(out, C.corrupt_images(images32, name, severity, seed=7))
    assert out.max() > 0  # no image turned black (see the spatter NaN repair)


def test_seed_changes_random_corruptions(images32: np.ndarray) -> None:
    a = C.corrupt_images(images32, "gaussian_noise", 3, seed=1)
    b = C.corrupt_images(images32, "gaussian_noise", 3, seed=2)
    assert not np.array_equal(a, b)
    # image i depends on (seed, i) only, not on the rest of the batch
    np.testing.assert_array_equal(C.corrupt_images(images32[:1], "gaussian_noise", 3, seed=1), a[:1])


def test_colour_and_channel_last_inputs(images32: np.ndarray) -> None:
    rgb = np.stack([images32, images32 // 2, images32 // 3], axis=-1)
    out = C.corrupt_images(rgb, "saturate", 1, seed=0)
    assert out.shape == rgb.shape and not np.array_equal(out, rgb)
    one = C.corrupt_images(images32[..., None], "fog", 2, seed=0)
    np.testing.assert_array_equal(one[..., 0], C.corrupt_images(images32, "fog", 2, seed=0))


def test_global_numpy_rng_is_restored(images32: np.ndarray) -> None:
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    C.corrupt_images(images32, "shot_noise", 2, seed=0)
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_rejects_bad_inputs_with_a_hint(images32: np.ndarray) -> None:
    with pytest.raises(ValueError, match="pad_images"):
        C.corrupt_images(images32[:, :28, :28], "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt_images(images32, "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        C.corrupt_images(images32.astype(np.float32), "fog", 1)


def test_non_finite_output_keeps_clean_pixels(images32: np.ndarray, monkeypatch) -> None:
    import imagecorruptions

    monkeypatch.setitem(imagecorruptions.corruption_dict, "spatter", lambda x, severity: np.full((32, 32, 3), np.nan))
    np.testing.assert_array_equal(C.corrupt_images(images32, "spatter", 1), images32)


def test_cache_round_trip(images32: np.ndarray, tmp_path: Path, monkeypatch) -> None:
    first = C.cached_corruption(images32, "contrast", 3, 0, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and files[0].name.startswith("contrast-s3-seed0-")
    np.testing.assert_array_equal(np.load(files[0], allow_pickle=False), first)

    def must_not_run(*_, **__):
        raise AssertionError("cache miss")

    monkeypatch.setattr(C, "corrupt_images", must_not_run)
    np.testing.assert_array_equal(C.cached_corruption(images32, "contrast", 3, 0, tmp_path), first)
    with pytest.raises(AssertionError, match="cache miss"):  # other images -> other key
        C.cached_corruption(images32[:2], "contrast", 3, 0, tmp_path)
    monkeypatch.undo()
    files[0].write_bytes(b"garbage")  # a damaged entry is recomputed and rewritten
    np.testing.assert_array_equal(C.cached_corruption(images32, "contrast", 3, 0, tmp_path), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == [files[0].name]  # no temp files left
