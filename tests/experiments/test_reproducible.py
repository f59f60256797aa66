"""Reproducible to the byte: training, figures and tables give the same bytes on every run.

Training is checked across processes (fresh allocator, fresh hash seeds) and across the thread counts a scheduler
may grant a rule: the workflow's ``setup`` fixes the count per rule, so a caller on one thread and a caller on two
train the same weights.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from experiments.atomic import write_csv, write_npz, write_safetensors
from experiments.data import fashion_mnist_dataset
from experiments.figures import paper_context, save_figure, write_table
from experiments.models import TrainConfig, build_model, train_classifier
from experiments.models.training import reproducible

REPO = Path(__file__).resolve().parents[2]

# Trains one tiny model the way the workflow's train_model rule does: the caller's thread count first (what a
# scheduler or a profile might set), then the rule's setup, then a seeded build and train_classifier.
_TRAIN = """
import sys, types
import torch
torch.set_num_threads(int(sys.argv[2]))
sys.path.insert(0, {scripts!r})
import _common
import numpy as np
from safetensors.torch import save_file
from torch import nn
from experiments.data import fashion_mnist_dataset
from experiments.models import TrainConfig, build_model, train_classifier

arch, caller_threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rule = types.SimpleNamespace(rule="train_model", config={{"threads": 2}}, threads=caller_threads, log=[])
assert _common.setup(rule) == 2 and torch.get_num_threads() == 2
torch.manual_seed(0)
if arch == "vit":  # attention matmuls (MKL), layer norms, dropout and drop-path (the global generators)
    import timm
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, in_chans=1, img_size=32,
                              patch_size=8, embed_dim=32, depth=2, num_heads=2, drop_rate=0.2, drop_path_rate=0.2)
else:  # convolutions and their weight gradients (oneDNN), the linear head
    model = build_model("small_cnn")
data = fashion_mnist_dataset("train", indices=np.arange(512))
cfg = TrainConfig(steps=12, batch_size=32, lr=3e-3, seed=3, flip=True, crop_padding=2)
train_classifier(model, data, cfg)
save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, out)
"""


def _train_in_subprocess(arch: str, caller_threads: int, out: Path) -> bytes:
    script = _TRAIN.format(scripts=str(REPO / "workflow" / "scripts"))
    result = subprocess.run(
        [sys.executable, "-c", script, arch, str(caller_threads), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_training_gives_bitwise_equal_weights_in_separate_processes_whatever_the_callers_threads(
    arch: str, tmp_path: Path
) -> None:
    one = _train_in_subprocess(arch, 1, tmp_path / "one.safetensors")
    two = _train_in_subprocess(arch, 2, tmp_path / "two.safetensors")
    a, b = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"weights differ between runs: {differing}"
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()


@pytest.fixture(scope="module")
def tiny() -> TensorDataset:
    return fashion_mnist_dataset("train", indices=np.arange(128))


def _dropout_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(build_model("small_cnn"), nn.Dropout(0.5))


class _Killed(Dataset):
    """A map-style dataset that dies after ``limit`` items, like a killed job."""

    def __init__(self, base: TensorDataset, limit: int) -> None:
        self.base, self.limit, self.served = base, limit, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.served += 1
        if self.served > self.limit:
            raise KeyboardInterrupt("simulated kill")
        return self.base[i]


def test_resuming_replays_the_same_dropout_masks(tiny: TensorDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=6, batch_size=16, lr=1e-3, checkpoint_every=3)
    reference = _dropout_cnn()
    train_classifier(reference, tiny, cfg)

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_dropout_cnn(), _Killed(tiny, limit=16 * 4 + 5), cfg, ckpt)  # dies during step 4
    torch.rand(1000)  # the successor job starts from another global random state
    resumed = _dropout_cnn()
    assert train_classifier(resumed, tiny, cfg, ckpt).resumed_from == 3
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_training_leaves_the_callers_random_state_and_flags_alone(tiny: TensorDataset) -> None:
    model = _dropout_cnn()
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    train_classifier(model, tiny, TrainConfig(steps=2, batch_size=16))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(after[0], expected[0]) and np.array_equal(after[1], expected[1]) and after[2] == expected[2]


def test_reproducible_sets_deterministic_kernels_inside_and_restores_them() -> None:
    torch.use_deterministic_algorithms(False)
    with reproducible(7):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        first = torch.rand(2)
    with reproducible(7):
        assert torch.equal(torch.rand(2), first)
    assert not torch.are_deterministic_algorithms_enabled()


def _figure() -> object:
    import matplotlib.pyplot as plt

    with paper_context():
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(np.arange(10), np.arange(10) ** 2, label=r"drift ($\sigma$)")
        ax.imshow(np.random.default_rng(0).random((6, 6)), extent=(0, 9, 0, 80), aspect="auto")
        ax.set_title("onset → IR")
        ax.legend()
    return fig


def test_saving_the_same_figure_twice_gives_the_same_pdf_and_png_bytes(tmp_path: Path, monkeypatch) -> None:
    digests = []
    for run, epoch in enumerate(("1000000000", "2000000000")):  # matplotlib stamps SOURCE_DATE_EPOCH if it stamps
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        written = save_figure(_figure(), tmp_path / f"run{run}" / "figure")
        digests.append({p.suffix: hashlib.sha256(p.read_bytes()).hexdigest() for p in written})
    assert digests[0].keys() == {".pdf", ".png"}
    assert digests[0] == digests[1]
    pdf = (tmp_path / "run0" / "figure.pdf").read_bytes()
    assert b"/CreationDate" not in pdf and b"/FontFile2" in pdf  # no date; TrueType (pdf.fonttype 42) embedded


def test_tables_and_intermediate_files_have_the_same_bytes_for_the_same_data(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model": ["cnn", "vit"], "auroc": [0.91234, 1 / 3], "n": [16, 128]})
    meta = {"step": "40", "fingerprint": '{"seed": 0}', "arch": "unet", "key": "N4_s0"}  # several keys: random order
    for run in ("a", "b"):
        write_table(frame, tmp_path / run / "table", caption="AUROC")
        write_csv(frame, tmp_path / run / "frame.csv.gz")
        write_npz(tmp_path / run / "arrays.npz", predictions=np.arange(4), ids=np.array(["f1", "f2"]))
        write_safetensors({"w": torch.ones(2, 3), "b": torch.arange(3)}, tmp_path / run / "weights.safetensors", meta)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["arrays.npz", "frame.csv.gz", "table.csv", "table.md", "table.tex", "weights.safetensors"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert b"\r" not in (tmp_path / "a" / "table.csv").read_bytes()
    assert pd.read_csv(tmp_path / "a" / "frame.csv.gz").equals(frame)
    with np.load(tmp_path / "a" / "arrays.npz") as arrays:
        assert list(arrays) == ["predictions", "ids"] and arrays["ids"].tolist() == ["f1", "f2"]
    with safe_open(tmp_path / "a" / "weights.safetensors", framework="pt") as fh:
        assert fh.metadata() == meta and torch.equal(fh.get_tensor("b"), torch.arange(3))
