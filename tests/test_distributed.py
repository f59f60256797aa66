"""Calibration over real ``torch.distributed`` ranks (gloo on the CPU, two spawned processes, no mocks).

One spawn runs every check; each rank writes what it got, and the parent compares it with one-process calibrations
of the same data. Shards hold multiples of 5 samples, so each rank's own moment/held-out split lines up with the
one-process split and the moments must agree to float64 rounding. The held-out reservoir (capacity 2048, 64 held-out
samples) must then hold exactly the same rows as a set; with a small capacity the rows are a subset of the union and
equal bit for bit to ``merge_accumulators`` of the ranks' accumulators (whose uniformity ``test_merge`` checks).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from library_fixtures import clean_batches, make_small_cnn
from safetensors.torch import load_file, save_file

from deepdrift import CalibrationConfig, CalibrationMismatchError, DeepDriftMonitor
from deepdrift.calibration import Calibration, CalibrationAccumulator
from deepdrift.distributed import all_reduce_accumulator
from deepdrift.merge import merge_accumulators

WORLD = 2
SMALL = CalibrationConfig(reservoir_size=16)
DDP_BATCHES = (8, 6)  # rank 1 runs fewer batches through the DDP model: must not hang


def _features(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(40, 40, generator=g, dtype=torch.float64)
    return {
        "a": torch.randn(n, 6, generator=g, dtype=torch.float64) * 2 + 50,
        "b": (torch.randn(n, 40, generator=g, dtype=torch.float64) @ mix).float().double(),
    }


def _fill(acc: CalibrationAccumulator, features: dict[str, torch.Tensor]) -> CalibrationAccumulator:
    for start in range(0, 160, 20):
        acc.update({k: v[start : start + 20] for k, v in features.items()})
    return acc


def _acc_tensors(prefix: str, acc: CalibrationAccumulator) -> dict[str, torch.Tensor]:
    out = {f"{prefix}/n_seen": torch.tensor(acc.n_seen), f"{prefix}/seen": torch.tensor(acc.reservoir.seen)}
    for name, m in acc.moments.items():
        out |= {
            f"{prefix}/{name}/mean": m.mean,
            f"{prefix}/{name}/m2": m.m2,
            f"{prefix}/{name}/count": torch.tensor(m.count),
        }
        out[f"{prefix}/{name}/comoment"] = m.comoment
        out[f"{prefix}/{name}/rows"] = acc.reservoir.samples()[name]
    return out


def _cal_tensors(prefix: str, calibration: Calibration) -> dict[str, torch.Tensor]:
    out = {f"{prefix}/n_seen": torch.tensor(calibration.n_seen)}
    for i, ref in enumerate(calibration.layers.values()):  # by position: a DDP monitor's names may carry "module."
        out |= {f"{prefix}/{i}/mean": ref.mean, f"{prefix}/{i}/var": ref.var, f"{prefix}/{i}/holdout": ref.holdout}
        out |= {f"{prefix}/{i}/principal": ref.principal, f"{prefix}/{i}/count": torch.tensor(ref.count)}
    return out


def _worker(rank: int, init: str, out: str, state: dict[str, torch.Tensor], shards: list[Any]) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        features, batches = shards[0], shards[1]
        got = _acc_tensors("acc", all_reduce_accumulator(_fill(CalibrationAccumulator(shard=rank), features[rank])))
        swapped = _fill(CalibrationAccumulator(shard=rank), features[1 - rank])
        got |= _acc_tensors("swap", all_reduce_accumulator(swapped))
        got |= _acc_tensors(
            "small", all_reduce_accumulator(_fill(CalibrationAccumulator(SMALL, shard=rank), features[rank]))
        )
        model = make_small_cnn()
        model.load_state_dict(state)
        monitor = DeepDriftMonitor(model).calibrate(batches[rank], distributed=True)
        got |= _cal_tensors("monitor", monitor.calibration)
        half = len(batches[rank]) // 2
        updated = DeepDriftMonitor(model).calibrate(batches[rank][:half], update=True, distributed=True)
        got |= _cal_tensors(
            "update", updated.calibrate(batches[rank][half:], update=True, distributed=True).calibration
        )
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        ddp_monitor = DeepDriftMonitor(ddp).calibrate(batches[rank][: DDP_BATCHES[rank]], distributed=True)
        got |= _cal_tensors("ddp", ddp_monitor.calibration)
        tagged = [(x, torch.full((len(x),), i % 2 if rank == 0 else 1)) for i, x in enumerate(batches[rank])]
        contexts = DeepDriftMonitor(model).calibrate(tagged, context=lambda b: int(b[1][0]), distributed=True)
        for key in (0, 1):
            got |= _cal_tensors(f"context{key}", contexts._calibration_of(key))
        save_file({k: v.detach().contiguous().clone() for k, v in got.items()}, f"{out}/rank{rank}.safetensors")
        errors = {"ddp_taps": ddp_monitor.layer_names}
        bad = [x.clone() for x in batches[rank][:2]]
        bad[1][0, 0, 0, 0] = float("nan") if rank == 1 else 0.0
        try:
            DeepDriftMonitor(model).calibrate(bad, distributed=True)
        except Exception as exc:  # the test records which error each rank saw
            errors["failure"] = f"{type(exc).__name__}: {exc}"
        config = CalibrationConfig(holdout_fraction=0.25 if rank == 1 else 0.2)
        try:
            all_reduce_accumulator(_fill(CalibrationAccumulator(config, shard=rank), features[rank]))
        except CalibrationMismatchError as exc:
            errors["mismatch"] = str(exc)
        Path(f"{out}/rank{rank}.json").write_text(json.dumps(errors))
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, *args: Any, limit: float = 120.0) -> None:
    context = mp.start_processes(
        _worker,
        args=(f"file://{tmp_path}/rendezvous", str(tmp_path), *args),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + limit
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed workers still running after {limit:.0f} s (a collective hangs)")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Spawn once; every test reads the two ranks' results."""
    tmp = tmp_path_factory.mktemp("distributed")
    torch.manual_seed(0)
    model = make_small_cnn()
    features = [_features(160, seed=r) for r in range(WORLD)]
    data = clean_batches(16, batch_size=20, seed=3)
    batches = [data[:8], data[8:]]
    _spawn(tmp, model.state_dict(), [features, batches])
    results = [load_file(str(tmp / f"rank{r}.safetensors")) for r in range(WORLD)]
    notes = [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return {"results": results, "notes": notes, "model": model, "features": features, "batches": batches}


def _one_process(model: torch.nn.Module, batches: list[Any], **kwargs: Any) -> Calibration:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so the features are the same bits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DeepDriftMonitor(model).calibrate(batches, **kwargs).calibration
    finally:
        torch.set_num_threads(threads)


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-12) -> None:
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()))


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


def test_every_rank_gets_identical_results(ranks):
    first, second = ranks["results"]
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_accumulators_all_reduce_to_one_pass_over_all_shards(ranks):
    got = ranks["results"][0]
    union = {k: torch.cat([f[k] for f in ranks["features"]]) for k in ("a", "b")}
    one = CalibrationAccumulator()
    for start in range(0, 320, 20):
        one.update({k: v[start : start + 20] for k, v in union.items()})
    assert int(got["acc/n_seen"]) == 320 and int(got["acc/seen"]) == 64
    for name, m in one.moments.items():
        assert int(got[f"acc/{name}/count"]) == m.count == 256
        _close(got[f"acc/{name}/mean"], m.mean)
        _close(got[f"acc/{name}/m2"], m.m2)
        _close(got[f"acc/{name}/comoment"], m.comoment)
        assert _rows(got[f"acc/{name}/rows"]) == _rows(one.reservoir.samples()[name])  # capacity > 64 held out


def test_all_reduce_equals_merge_accumulators_and_ignores_which_rank_had_which_shard(ranks):
    got = ranks["results"][0]
    parts = [_fill(CalibrationAccumulator(shard=r), f) for r, f in enumerate(ranks["features"])]
    merged = merge_accumulators(*parts)
    small = merge_accumulators(
        *[_fill(CalibrationAccumulator(SMALL, shard=r), f) for r, f in enumerate(ranks["features"])]
    )
    for name in ("a", "b"):
        for stat in ("mean", "m2", "comoment"):  # the same float64 arithmetic, bit for bit
            assert torch.equal(got[f"acc/{name}/{stat}"], getattr(merged.moments[name], stat))
            assert torch.equal(got[f"swap/{name}/{stat}"], got[f"acc/{name}/{stat}"])
        assert got[f"swap/{name}/rows"].shape == got[f"acc/{name}/rows"].shape
        assert torch.equal(got[f"small/{name}/rows"], small.reservoir.samples()[name])
        assert got[f"small/{name}/rows"].shape[0] == 16 and int(got["small/seen"]) == 64
        assert _rows(got[f"small/{name}/rows"]) <= _rows(merged.reservoir.samples()[name])


@pytest.mark.parametrize("prefix", ["monitor", "update"])
def test_monitor_distributed_equals_one_process(ranks, prefix):
    got = ranks["results"][0]
    ref = _one_process(ranks["model"], ranks["batches"][0] + ranks["batches"][1])
    _check_calibration(got, prefix, ref)


def test_ddp_model_with_unequal_shards(ranks):
    got, notes = ranks["results"][0], ranks["notes"][0]
    batches = ranks["batches"][0][: DDP_BATCHES[0]] + ranks["batches"][1][: DDP_BATCHES[1]]
    _check_calibration(got, "ddp", _one_process(ranks["model"], batches))
    assert len(notes["ddp_taps"]) == 3


def test_contexts_seen_by_some_ranks_only(ranks):
    got = ranks["results"][0]
    first, second = ranks["batches"]
    _check_calibration(got, "context0", _one_process(ranks["model"], first[0::2]))
    _check_calibration(got, "context1", _one_process(ranks["model"], first[1::2] + second))


def test_a_failing_or_mismatched_rank_stops_every_rank(ranks):
    first, second = ranks["notes"]
    assert second["failure"].startswith("NonFiniteActivationError")
    assert first["failure"].startswith("RuntimeError: distributed calibration failed on another rank (rank 1: ")
    for notes in (first, second):
        assert "rank 1 has another config than rank 0 (holdout_fraction=0.25 instead of 0.2)" in notes["mismatch"]


def _check_calibration(got: dict[str, torch.Tensor], prefix: str, ref: Calibration) -> None:
    assert int(got[f"{prefix}/n_seen"]) == ref.n_seen
    for i, layer in enumerate(ref.layers.values()):
        assert int(got[f"{prefix}/{i}/count"]) == layer.count
        _close(got[f"{prefix}/{i}/mean"], layer.mean)
        _close(got[f"{prefix}/{i}/var"], layer.var)
        assert _rows(got[f"{prefix}/{i}/holdout"]) == _rows(layer.holdout)
        principal = got[f"{prefix}/{i}/principal"]  # float32 and sign-free only as a projector
        _close(principal @ principal.T, layer.principal @ layer.principal.T, rtol=1e-4)
