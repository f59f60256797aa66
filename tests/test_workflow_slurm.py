"""The cluster profiles on the `test` config, with local stand-ins for SLURM's commands (tests/slurm_standin/).

`workflow/profiles/slurm` runs through the real snakemake-executor-plugin-slurm and `slurm-generic` through
snakemake-executor-plugin-cluster-generic. The stand-in `sbatch` starts each job as a local process and logs what it
was asked for, which must be the threads, memory, time, GPUs and partition the profile declares for that rule.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
PROFILES = REPO / "workflow" / "profiles"
STANDIN = Path(__file__).resolve().parent / "slurm_standin"
CLUSTER_PROFILES = ("slurm", "slurm-generic", "local-gpu")
PER_RULE = ("mem_mb", "runtime", "gpu")  # declared per rule in set-resources; threads in set-threads
# Cheapest targets that still make a DAG: train_model (cnn) feeds two jobs that the cluster runs side by side.
SLURM_TARGETS = ("calibration_contract", "fault_localisation")
# Then the other profile continues in the same folder: a GPU rule that reuses the trained model, and a CPU-only rule.
GENERIC_TARGETS = ("stream_detection", "soak")


@functools.cache
def _rules() -> tuple[str, ...]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--list-rules", "--config", "config_set=test"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, check=True)
    # `all` only collects targets: it never runs a job, so it has no resources to declare
    return tuple(r for r in result.stdout.split() if r != "all")


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _env(state: Path) -> dict[str, str]:
    env = dict(os.environ, STANDIN_SLURM_STATE=str(state))
    env["PATH"] = os.pathsep.join([str(STANDIN), str(SNAKEMAKE.parent), env.get("PATH", "")])
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def _snakemake(workdir: Path, state: Path, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(SNAKEMAKE),
        *args,
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "-d",
        str(workdir),
        "--profile",
        str(PROFILES / profile),
        "--config",
        "config_set=test",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=_env(state), timeout=900)


def _records(state: Path, name: str) -> list[dict]:
    path = state / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _rule(submission: dict) -> str:
    # the slurm plugin comments "rule_<rule>[_wildcards_<values>]", sbatch-submit.py names the job "smk-<rule>"
    if submission["comment"]:
        return submission["comment"].split("_wildcards_")[0].removeprefix("rule_")
    return submission["name"].removeprefix("smk-")


def _exit_status(state: Path, submission: dict) -> str:
    return (state / "jobs" / f"{submission['id']}.rc").read_text()


def _end_leftover_jobs(state: Path) -> None:
    """Stop stand-in jobs still running after a failed or timed-out run (each is its own process group)."""
    for started in (state / "jobs").glob("*.started"):
        if not started.with_name(started.name.replace(".started", ".rc")).exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(started.read_text()), signal.SIGTERM)


def _failure(result: subprocess.CompletedProcess[str], state: Path) -> str:
    logs = "".join(
        Path(r["output"]).read_text()[-1500:]
        for r in _records(state, "submissions.jsonl")
        if Path(r["output"]).exists()
    )
    return (result.stdout + result.stderr)[-3000:] + "\n--- job logs ---\n" + logs


def _run(tmp_path_factory, workdir: Path, profile: str, targets: tuple[str, ...], *extra: str):
    state = tmp_path_factory.mktemp(f"standin-{profile}")
    try:
        result = _snakemake(workdir, state, profile, *targets, *extra)
    finally:
        _end_leftover_jobs(state)
    assert result.returncode == 0, _failure(result, state)
    return state


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='pip install -e ".[cluster]"')
    workdir = tmp_path_factory.mktemp("cluster")
    # poll every second at first instead of the plugin's 40 s, sized for a real scheduler
    state = _run(tmp_path_factory, workdir, "slurm", SLURM_TARGETS, "--slurm-init-seconds-before-status-checks", "1")
    return workdir, state


@pytest.fixture(scope="module")
def generic_run(slurm_run, tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_cluster_generic", reason='pip install -e ".[cluster]"')
    workdir = slurm_run[0]
    state = _run(tmp_path_factory, workdir, "slurm-generic", GENERIC_TARGETS, "--seconds-between-status-checks", "2")
    return workdir, state


def _assert_requested_as_declared(submission: dict, profile: dict) -> None:
    rule = _rule(submission)
    declared = {**profile["default-resources"], **profile["set-resources"][rule]}
    assert submission["cpus_per_task"] == str(profile["set-threads"][rule]), rule
    assert submission["mem_mb"] == str(declared["mem_mb"]), rule
    assert submission["time"] == str(declared["runtime"]), rule
    assert submission["gpus"] == (str(declared["gpu"]) if declared["gpu"] else None), rule
    assert submission["partition"] == declared.get("slurm_partition"), rule


def _assert_tables_filled(workdir: Path) -> None:
    tables = list((workdir / "results" / "test" / "paper_figures").glob("*.csv"))
    assert tables
    for table in tables:
        assert len(table.read_text().splitlines()) >= 2, table  # a header and at least one row


@pytest.mark.slow
def test_slurm_profile_submits_every_job_with_its_declared_resources(slurm_run):
    workdir, state = slurm_run
    submissions = _records(state, "submissions.jsonl")
    assert sorted(_rule(s) for s in submissions) == sorted(["train_model", *SLURM_TARGETS])
    for submission in submissions:
        _assert_requested_as_declared(submission, _profile("slurm"))
    # each job ran as one job step through srun (the jobstep executor), and succeeded
    assert sorted(s["job"] for s in _records(state, "sruns.jsonl")) == sorted(s["id"] for s in submissions)
    assert all(_exit_status(state, s) == "0" for s in submissions)
    assert list((workdir / "results" / "test" / "models").glob("cnn.*"))
    _assert_tables_filled(workdir)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("run", "profile", "targets"),
    [("slurm_run", "slurm", SLURM_TARGETS), ("generic_run", "slurm-generic", GENERIC_TARGETS)],
)
def test_rerunning_is_a_no_op(request, tmp_path, run, profile, targets):
    # Snakemake finds every output of the targets in place, with the metadata the cluster jobs recorded
    result = _snakemake(request.getfixturevalue(run)[0], tmp_path, profile, *targets, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_slurm_generic_profile_continues_the_same_workflow(generic_run):
    workdir, state = generic_run
    submissions = _records(state, "submissions.jsonl")
    # the model trained through the other profile is reused, not submitted again
    assert sorted(_rule(s) for s in submissions) == sorted(GENERIC_TARGETS)
    for submission in submissions:
        _assert_requested_as_declared(submission, _profile("slurm-generic"))
    assert all(_exit_status(state, s) == "0" for s in submissions)
    _assert_tables_filled(workdir)


def test_status_script_tells_running_success_and_failed_apart(tmp_path):
    status = PROFILES / "slurm-generic" / "sbatch-status.py"
    env = _env(tmp_path)

    def submit(command: str) -> str:
        out = subprocess.run(
            ["sbatch", "--parsable", f"--wrap={command}"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def state_of(jobid: str) -> str:
        return subprocess.run(
            [sys.executable, str(status), jobid], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    done, failed, sleeping = submit("true"), submit("exit 3"), submit("sleep 60")
    try:
        deadline = time.monotonic() + 30
        while (state_of(done), state_of(failed)) != ("success", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (state_of(done), state_of(failed), state_of(sleeping)) == ("success", "failed", "running")
        subprocess.run(["scancel", sleeping], env=env, check=True)
        assert state_of(sleeping) == "failed"
        assert state_of("999999") == "success"  # unknown to SLURM: Snakemake then checks the outputs itself
    finally:
        _end_leftover_jobs(tmp_path)


@pytest.mark.parametrize("profile", CLUSTER_PROFILES)
def test_every_rule_declares_its_resources(profile):
    config = _profile(profile)
    rules = set(_rules())
    assert rules, "snakemake --list-rules found no rules"
    assert set(config["set-threads"]) == rules, "set-threads must name exactly the workflow's rules"
    assert set(config["set-resources"]) == rules, "set-resources must name exactly the workflow's rules"
    for rule in rules:
        assert config["set-threads"][rule] >= 1, rule
        missing = [key for key in PER_RULE if key not in config["set-resources"][rule]]
        assert not missing, f"{profile}: rule {rule} declares no {', '.join(missing)}"


def test_cluster_and_gpu_profiles_declare_the_same_resources():
    slurm = _profile("slurm")
    keys = ("default-resources", "set-threads", "set-resources")
    generic = _profile("slurm-generic")
    for key in keys:
        assert generic[key] == slurm[key], f"slurm-generic and slurm differ in {key}"
    gpu = _profile("local-gpu")

    def local(resources: dict) -> dict:  # partitions and accounts only mean something to SLURM
        return {k: v for k, v in resources.items() if not k.startswith("slurm_")}

    assert gpu["set-threads"] == slurm["set-threads"]
    assert gpu["default-resources"] == local(slurm["default-resources"])
    assert gpu["set-resources"] == {rule: local(res) for rule, res in slurm["set-resources"].items()}
    # every rule that asks for a GPU on SLURM asks for a GPU partition
    for rule, resources in slurm["set-resources"].items():
        assert bool(resources["gpu"]) == (resources.get("slurm_partition") == "gpu"), rule


def test_local_gpu_profile_hands_each_job_its_resources(tmp_path):
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "-d",
        str(tmp_path),
        "--profile",
        str(PROFILES / "local-gpu"),
        "--dry-run",
        "--config",
        "config_set=test",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    declared = _profile("local-gpu")["set-resources"]
    jobs = [block for block in result.stdout.split("\nrule ")[1:] if not block.startswith("all:")]
    assert jobs
    for block in jobs:
        rule = block.split(":", 1)[0]
        resources = next(line for line in block.splitlines() if line.strip().startswith("resources:"))
        assert f"mem_mb={declared[rule]['mem_mb']}," in resources, (rule, resources)
        assert f"gpu={declared[rule]['gpu']}" in resources, (rule, resources)


def test_profiles_give_each_rule_the_threads_it_declares_under_the_paper_set(tmp_path):
    # without a profile the scheduler uses the rules' own threads: directives (config-driven); --cores caps them
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "-d",
        str(tmp_path),
        "--cores",
        "1024",
        "--dry-run",
        "--config",
        "config_set=paper",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    declared = {}
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        threads = [line.split(":")[1] for line in block.splitlines() if line.strip().startswith("threads:")]
        declared[rule] = int(threads[0]) if threads else 1  # Snakemake prints threads only when above 1
    declared.pop("all", None)
    profile = _profile("slurm")["set-threads"]
    # overhead declares all of the run's cores (nothing runs beside its timings); a profile gives it at least the
    # config's threads, on which it computes
    assert declared.pop("overhead") == 1024
    assert profile["overhead"] >= yaml.safe_load((REPO / "workflow/config/paper/common.yaml").read_text())["threads"]
    assert declared == {rule: n for rule, n in profile.items() if rule != "overhead"}
