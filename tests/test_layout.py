"""Pooling over the right axes: the batch axis found from the call's batch size, channels from module evidence."""

import threading

import pytest
import torch
import torchvision
from library_fixtures import mean_std_max
from torch import nn

from deepdrift.errors import LayerNotFoundError, UnsupportedOutputError
from deepdrift.pooling import PoolingConfig, pool_output
from deepdrift.taps import LayerTaps


@pytest.fixture(scope="module")
def swin_t() -> nn.Module:
    return torchvision.models.swin_t(weights=None).eval()


def test_torchvision_swin_stages_are_pooled_channels_last(swin_t):
    taps = LayerTaps(swin_t)
    with torch.no_grad():
        _, feats = taps.run(lambda: swin_t(torch.randn(2, 3, 64, 64)), batch_size=2)
    widths = {"features.0": 96, "features.1": 96, "features.3": 192, "features.5": 384, "features.7": 768}
    assert {name: f.shape[1] for name, f in feats.items()} == {name: 3 * c for name, c in widths.items()}
    assert [t.raw_shape for t in taps.taps] == [(16, 16, 96), (16, 16, 96), (8, 8, 192), (4, 4, 384), (2, 2, 768)]


def test_a_named_swin_norm_is_pooled_channels_last_too(swin_t):
    x = torch.randn(2, 3, 64, 64)
    taps = LayerTaps(swin_t, layers=["norm"])  # nn.LayerNorm acts on the last axis: (B, H, W, C)
    with torch.no_grad():
        _, feats = taps.run(lambda: swin_t(x), batch_size=2)
        ref = swin_t.norm(swin_t.features(x))
    torch.testing.assert_close(feats["norm"], mean_std_max(ref, (1, 2)))


def _sequence_first_encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0)  # batch_first=False
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()


@pytest.mark.parametrize("batch", [3, 7])  # 7: as many samples as tokens, shape (7, 7, 16)
def test_sequence_first_transformer_is_pooled_over_the_sequence(batch):
    encoder = _sequence_first_encoder()
    x = torch.randn(7, batch, 16)  # (L, B, C)
    taps = LayerTaps(encoder, layers=["layers.0", "layers.1"])
    with torch.no_grad():
        _, feats = taps.run(lambda: encoder(x), batch_size=batch)
        ref = encoder.layers[0](x)
    assert feats["layers.0"].shape == (batch, 48)
    torch.testing.assert_close(feats["layers.0"], mean_std_max(ref.transpose(0, 1), 1))
    assert taps.taps[0].raw_shape == (7, 16) and taps.taps[0].n_features == 48


class SeqFirstMixer(nn.Module):
    """A hand-written sequence-first layer: nothing in the module says where the batch is."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(8))

    def forward(self, x):
        return x * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = SeqFirstMixer()
        self.head = nn.Linear(8, 2)

    def forward(self, x):  # x: (L, B, C)
        return self.head(self.mix(x).mean(0))


def test_leading_axis_that_is_not_the_batch_raises_and_says_how_to_declare():
    model = Net()
    taps = LayerTaps(model, layers=["mix"])
    with pytest.raises(UnsupportedOutputError, match=r"'mix'.*\(5, 3, 8\).*layouts=\{'mix': 'LNC'\}"):
        taps.run(lambda: model(torch.randn(5, 3, 8)), batch_size=3)


def test_ambiguous_batch_axis_raises_instead_of_guessing():
    model = Net()
    taps = LayerTaps(model, layers=["mix"])
    with pytest.raises(UnsupportedOutputError, match=r"'mix'.*\(4, 4, 8\).*axis 0.*axis 1.*layouts="):
        taps.run(lambda: model(torch.randn(4, 4, 8)), batch_size=4)


def test_declared_layout_pools_over_the_declared_axes():
    model = Net()
    x = torch.randn(4, 4, 8)
    taps = LayerTaps(model, layers=["mix"], layouts={"mix": "LNC"})
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x), batch_size=4)
    torch.testing.assert_close(feats["mix"], mean_std_max(x.transpose(0, 1), 1))


def test_batch_first_layout_seen_once_settles_later_ambiguous_batches():
    model = nn.Sequential(SeqFirstMixer(), nn.Flatten(), nn.Linear(40, 2))  # batch-first here: (B, 5, 8)
    taps = LayerTaps(model, layers=["0"])
    with torch.no_grad():
        taps.run(lambda: model(torch.randn(3, 5, 8)), batch_size=3)  # unambiguous: (3, 5, 8)
        x = torch.randn(5, 5, 8)
        _, feats = taps.run(lambda: model(x), batch_size=5)  # (5, 5, 8) alone would be ambiguous
    torch.testing.assert_close(feats["0"], mean_std_max(x, 1))


def test_declared_layouts_are_validated_with_close_matches():
    model = Net()
    with pytest.raises(LayerNotFoundError, match=r"'mixx'.*Closest taps: 'mix'"):
        LayerTaps(model, layers=["mix"], layouts={"mixx": "LNC"})
    with pytest.raises(ValueError, match="must be one of"):
        LayerTaps(model, layers=["mix"], layouts={"mix": "BLC"})


@pytest.mark.parametrize("batch", [2, 6])  # 6: as many samples as channels, shape (6, 6, 8)
def test_conv1d_outputs_are_channels_first_by_module_evidence(batch):
    model = nn.Sequential(nn.Conv1d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8, 2))
    x = torch.randn(batch, 4, 10)
    taps = LayerTaps(model, layers=["1"])  # the ReLU after the conv: (B, C, L)
    with torch.no_grad():
        _, feats = taps.run(lambda: model(x), batch_size=batch)
        ref = model[1](model[0](x))
    torch.testing.assert_close(feats["1"], mean_std_max(ref, 2))


def test_pool_output_checks_the_batch_axis():
    x = torch.randn(5, 3, 8)
    torch.testing.assert_close(pool_output(x, batch_size=3, layout="LNC"), mean_std_max(x.transpose(0, 1), 1))
    torch.testing.assert_close(
        pool_output(x, PoolingConfig(layout="LNC"), batch_size=3), mean_std_max(x.transpose(0, 1), 1)
    )
    with pytest.raises(UnsupportedOutputError, match="batch size 4"):
        pool_output(torch.randn(2, 3, 4, 4), batch_size=4)
    assert pool_output(torch.randn(1, 1, 6), batch_size=1).shape == (1, 18)  # (1, 1, C) pools the same either way
    assert pool_output(torch.randn(3, 9), batch_size=3).shape == (3, 9)


def test_tap_records_feature_count_and_raw_shape_after_the_first_forward():
    model = torchvision.models.resnet18(weights=None).eval()
    taps = LayerTaps(model)
    assert all(t.n_features is None and t.raw_shape is None for t in taps.taps)
    with torch.no_grad():
        taps.run(lambda: model(torch.randn(2, 3, 64, 64)), batch_size=2)
    assert [(t.n_features, t.raw_shape) for t in taps.taps] == [
        (192, (64, 16, 16)),
        (192, (64, 16, 16)),
        (384, (128, 8, 8)),
        (768, (256, 4, 4)),
        (1536, (512, 2, 2)),
    ]
    taps.set_order(list(reversed(taps.names)))  # a loaded calibration's order keeps what was learned
    assert taps.taps[0].n_features == 1536


def test_concurrent_runs_give_the_sequential_results(small_cnn):
    taps = LayerTaps(small_cnn)
    inputs = [torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(40)]
    with torch.no_grad():
        expected = [taps.run(lambda x=x: small_cnn(x), batch_size=4)[1] for x in inputs]
    results: dict[int, dict[str, torch.Tensor]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(k: int) -> None:
        start.wait()
        try:
            with torch.no_grad():
                for i in range(k, len(inputs), 4):
                    results[i] = taps.run(lambda i=i: small_cnn(inputs[i]), batch_size=4)[1]
        except BaseException as exc:  # reported below, with the failing thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, ref in enumerate(expected):
        for name, value in ref.items():
            assert torch.equal(results[i][name], value), (i, name)
    assert sum(len(m._forward_hooks) for m in small_cnn.modules()) == 0


def test_a_run_inside_its_own_forward_is_refused(small_cnn):
    taps = LayerTaps(small_cnn)
    with pytest.raises(RuntimeError, match="inside its own forward"):
        taps.run(lambda: taps.run(lambda: small_cnn(torch.randn(2, 3, 16, 16))))
