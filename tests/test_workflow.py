"""The whole reproduction workflow on the CI-sized `test` config: proves the DAG end to end with real Snakemake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _snakemake(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--config", "config_set=test", *extra]
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
def test_rule_benchmarks_record_time_and_memory(workflow_run):
    benchmarks = list((workflow_run / "results" / "test" / "benchmarks").glob("*.tsv"))
    assert benchmarks
    header = benchmarks[0].read_text().splitlines()[0].split("\t")
    assert "s" in header and "max_rss" in header


def test_config_sets_validate_against_their_schemas():
    for config_set in ("test", "default", "paper"):
        cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--cores", "1", "--dry-run",
               "--config", f"config_set={config_set}"]
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
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--cores", "1", "--dry-run",
           "--config", "config_set=test", "--configfile", str(extra)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and expected in result.stdout + result.stderr


def test_an_invalid_config_is_rejected(tmp_path):
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--cores", "1", "--dry-run",
           "--config", "config_set=test", "threads=0"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0 and "threads" in result.stdout + result.stderr
