"""The whole reproduction workflow on the CI-sized `test` config: proves the DAG end to end with real Snakemake."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _snakemake(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        "--config",
        "config_set=test",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1500)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    result = _snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_every_catalogued_output_is_produced_and_indexed(workflow_run):
    figures = workflow_run / "results" / "test" / "paper_figures"
    index = (figures / "README.md").read_text()
    pdfs = sorted(figures.glob("*.pdf"))
    tables = sorted(figures.glob("*.csv"))
    assert pdfs and tables
    for pdf in pdfs:
        assert pdf.stat().st_size > 1000
    for table in tables:
        assert len(table.read_text().splitlines()) >= 2, table  # a header and at least one row
    for path in pdfs + tables:
        assert f"`{path.stem}`" in index
    for pdf in pdfs:
        assert pdf.with_suffix(".png").exists()


@pytest.mark.slow
def test_rerunning_is_a_no_op(workflow_run):
    result = _snakemake(workflow_run, "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_the_replicate_of_a_study_model_repeats_its_held_out_verdicts(workflow_run):
    """The replicate study measures a study model (training seed 0) with the fault benchmark's own code path: its
    held-out and control verdicts are the benchmark's rows for the same localisers, batch for batch."""
    import pandas as pd

    results = workflow_run / "results" / "test"
    keys = ["fault_set", "fault_id", "localiser", "batch_size", "batch"]
    columns = [*keys, "onset_pred", "detected", "onset_exact"]
    study = pd.read_csv(results / "faults" / "verdicts.csv")
    study = study[(study["model"] == "cnn") & study["fault_set"].isin(["held-out", "control"])]
    study = study[study["localiser"].isin(["doctor", "first_tap"])][columns].sort_values(keys, ignore_index=True)
    replicate = pd.read_csv(results / "replicates" / "verdicts.csv.gz")
    replicate = replicate[replicate["model"] == "cnn"][columns].sort_values(keys, ignore_index=True)
    assert len(study) > 100
    pd.testing.assert_frame_equal(study, replicate)


@pytest.mark.slow
def test_the_detection_replicate_of_a_study_model_is_its_footing_row(workflow_run):
    """Claim 4 per seed reads the corruption benchmark's own scores: for the study model (training seed 0) its
    DeepDrift AUROC, best peer and difference on all taps (max) are the equal-footing table's."""
    import pandas as pd

    results = workflow_run / "results" / "test"
    versus = pd.read_csv(results / "paper_figures" / "corruption_footing_versus.csv")
    versus = versus[(versus["model"] == "cnn") & (versus["layers"] == "all taps (max)")].set_index("batch_size")
    seeds = pd.read_csv(results / "replicates" / "detection_per_seed.csv")
    study = seeds[seeds["model"] == "cnn"].set_index(["quantity", "batch_size"])
    assert len(versus) and set(seeds["model"]) == {"cnn", "cnn_s1"}
    for batch_size, row in versus.iterrows():
        ours = study.loc[("DeepDrift AUROC, all taps (max)", batch_size), "value"]
        same = study.loc[("DeepDrift - best peer, all taps (max)", batch_size)]
        assert ours == pytest.approx(row["deepdrift"], abs=6e-4)  # the footing CSV has 3 decimals
        assert same["value"] == pytest.approx(row["difference"], abs=6e-4) and same["peer"] == row["best peer"]


@pytest.mark.slow
def test_rule_benchmarks_record_time_and_memory(workflow_run):
    benchmarks = list((workflow_run / "results" / "test" / "benchmarks").glob("*.tsv"))
    assert benchmarks
    header = benchmarks[0].read_text().splitlines()[0].split("\t")
    assert "s" in header and "max_rss" in header


def test_config_sets_validate_against_their_schemas():
    for config_set in ("test", "default", "full", "paper"):
        cmd = [
            str(SNAKEMAKE),
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--cores",
            "1",
            "--dry-run",
            "--config",
            f"config_set={config_set}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
        assert result.returncode == 0, (config_set, result.stderr[-2000:])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"corruption": {"method_options": {"knn": {"kk": 3}}}}, "'kk' was unexpected"),
        ({"models": {"cnn": {"pretrainde": True}}}, "'pretrainde' was unexpected"),
        ({"thread": 2}, "unknown config key 'thread'; did you mean 'threads'?"),
    ],
)
def test_an_unknown_config_key_is_rejected_at_any_level(tmp_path, override, expected):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(override))
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--cores",
        "1",
        "--dry-run",
        "--config",
        "config_set=test",
        "--configfile",
        str(extra),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and expected in result.stdout + result.stderr


def test_an_invalid_config_is_rejected(tmp_path):
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--cores",
        "1",
        "--dry-run",
        "--config",
        "config_set=test",
        "threads=0",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and "threads" in result.stdout + result.stderr


DRY_RUN_CORES = 1024
"""More cores than any rule asks for, so a dry run shows every rule's own ``threads:``."""
RUNS_ALONE = frozenset({"overhead"})
"""Rules whose ``threads:`` are all of the run's cores, so no job runs beside their wall-clock timings; they compute on
the config's count like every other rule."""


def _threads_by_rule(config_set: str) -> dict[str, int]:
    """Each rule's declared ``threads:`` under ``config_set`` (a dry run with more cores than any rule asks for)."""
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--cores",
        str(DRY_RUN_CORES),
        "--dry-run",
        "--forceall",
        "--config",
        f"config_set={config_set}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    declared, rule = {}, None
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            declared.setdefault(rule, 1)  # snakemake prints threads only when above 1
        elif rule and line.strip().startswith("threads:"):
            declared[rule] = int(line.split(":")[1])
    return declared


@pytest.mark.parametrize("config_set", ["test", "default", "full", "paper"])
def test_every_rule_computes_on_the_threads_it_declares(config_set):
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO / "workflow" / "scripts"))
    config = {}
    for path in sorted((REPO / "workflow" / "config" / config_set).glob("*.yaml")):
        config.update(yaml.safe_load(path.read_text()))
    declared = _threads_by_rule(config_set)
    scripted = {rule for rule in declared if rule not in ("all", "figure_index")}  # rules that call setup()
    assert scripted <= set(_common.RULE_THREADS), "add the new rule to workflow/scripts/_common.py RULE_THREADS"
    shared = scripted - RUNS_ALONE
    assert {rule: _common.rule_threads(rule, config) for rule in shared} == {r: declared[r] for r in shared}
    assert {rule: declared[rule] for rule in RUNS_ALONE} == dict.fromkeys(RUNS_ALONE, DRY_RUN_CORES)
    assert all(1 <= _common.rule_threads(rule, config) <= DRY_RUN_CORES for rule in RUNS_ALONE)


def _digest(path: Path) -> str:
    if path.suffix == ".safetensors":  # tensors and metadata: safetensors writes its metadata in a random key order
        from safetensors import safe_open

        digest = hashlib.sha256()
        with safe_open(str(path), framework="pt") as fh:
            digest.update(json.dumps(fh.metadata(), sort_keys=True).encode())
            for name in sorted(fh.keys()):
                digest.update(name.encode() + fh.get_tensor(name).numpy().tobytes())
        return digest.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Files that record the run rather than the result: timings (benchmarks, metrics and train JSON), log lines,
# and torch.save checkpoints (each carries a random serialization id).
_RUN_RECORDS = ("benchmarks/*", "logs/*", "*.ckpt", "models/*.json", "diffusion/*/train.json")


def _result_digests(results: Path) -> dict[str, str]:
    return {
        str(p.relative_to(results)): _digest(p)
        for p in sorted(results.rglob("*"))
        if p.is_file() and not any(p.relative_to(results).match(pattern) for pattern in _RUN_RECORDS)
    }


@pytest.mark.slow
def test_a_forced_rerun_on_other_thread_grants_reproduces_every_result_byte_for_byte(workflow_run):
    """Retrain from scratch with every rule granted one thread: every figure, table and weight file is identical.

    The monitor-overhead and memory-soak rules measure this machine (wall clock, resident memory); they are left out
    of the rerun (``--omit-from``), and with them the figure index that depends on them.
    """
    results = workflow_run / "results" / "test"
    before = _result_digests(results)
    for checkpoint in [*results.glob("models/*.ckpt"), *results.glob("diffusion/*/checkpoints")]:
        shutil.rmtree(checkpoint) if checkpoint.is_dir() else checkpoint.unlink()
    rerun = _snakemake(workflow_run, "--forceall", "--max-threads", "1", "--omit-from", "overhead", "soak")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "computing on 2 threads as the config declares (the scheduler granted 1)" in "".join(
        p.read_text() for p in (results / "logs").glob("train_model_*.log")
    )
    after = _result_digests(results)
    assert before.keys() == after.keys()
    changed = sorted(name for name in before if before[name] != after[name])
    assert not changed, f"a forced rerun changed: {changed}"
    assert any(name.endswith(".pdf") for name in before) and any(name.startswith("models/") for name in before)
