"""Hugging Face transformers hide their depth inside one backbone module; taps must still span it."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from deepdrift import DeepDriftMonitor  # noqa: E402
from deepdrift.layer_selection import auto_select_layers  # noqa: E402


def _tiny_vit():
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    return transformers.ViTForImageClassification(config).eval()


def _tiny_bert():
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return transformers.BertForSequenceClassification(config).eval()


@pytest.mark.parametrize(("build", "embedding"), [(_tiny_vit, "vit.embeddings"), (_tiny_bert, "bert.embeddings")])
def test_embedding_and_every_block_are_tapped(build, embedding):
    model = build()
    names, rule = auto_select_layers(model)
    assert rule == "repeated-blocks" and names[0] == embedding and len(names) == 5
    assert all(name.rsplit(".", 1)[-1].isdigit() for name in names[1:])


def test_vit_features_pool_per_sample():
    model = _tiny_vit()
    monitor = DeepDriftMonitor(model)
    with torch.no_grad():
        _, features = monitor._taps.run(lambda: model(torch.randn(3, 1, 16, 16)), batch_size=3)
    assert all(f.shape == (3, 3 * 32) and torch.isfinite(f).all() for f in features.values())
