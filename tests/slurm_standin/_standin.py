"""A local stand-in for the SLURM commands Snakemake's executors call (tests only).

`sbatch` runs the submitted script in the background as a local process and prints a job id; `sacct` and `squeue`
answer status queries from files; `srun` runs its command in place; `scancel` kills a job's process group; `sinfo`
lists two partitions. Every submission is logged with the resources it asked for (``submissions.jsonl``), every job
step with its options (``sruns.jsonl``), so a test can check what a profile really requested.

State lives in the folder named by ``STANDIN_SLURM_STATE`` (not ``SLURM_*``: the jobstep executor strips those from a
job step's environment). Options the real commands would reject (unknown flags, an unknown partition, job arrays)
are rejected here too, so a profile that this accepts has no typo in what it passes to SLURM.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARTITIONS = ("cpu", "gpu")  # "cpu" is the default partition, as `sinfo` marks it
_RUNNER = Path(__file__).resolve()


def _state() -> Path:
    folder = os.environ.get("STANDIN_SLURM_STATE")
    if not folder:
        sys.exit("slurm stand-in: set STANDIN_SLURM_STATE to a folder for the job state")
    path = Path(folder)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(state: Path):
    with open(state / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _append(path: Path, record: dict) -> None:
    with _locked(path.parent), open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _job(state: Path, jobid: str) -> dict | None:
    path = state / "jobs" / f"{jobid}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _status(state: Path, jobid: str) -> str:
    rc_file = state / "jobs" / f"{jobid}.rc"
    if rc_file.exists():
        rc = rc_file.read_text().strip()
        return {"0": "COMPLETED", "cancelled": "CANCELLED"}.get(rc, "FAILED")
    return "RUNNING" if (state / "jobs" / f"{jobid}.started").exists() else "PENDING"


def _jobs(state: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (state / "jobs").glob("*.json")), key=lambda j: int(j["id"]))


class _Parser(argparse.ArgumentParser):
    def __init__(self, prog: str):
        super().__init__(prog=prog, add_help=False)  # squeue's -h is --noheader

    def error(self, message):  # the real commands exit 1 with a one-line error
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(1)


def sbatch(argv: list[str]) -> int:
    parser = _Parser(prog="sbatch")
    for flag in ("--parsable", "--requeue", "--no-requeue"):
        parser.add_argument(flag, action="store_true")
    for flags in (
        ("-J", "--job-name"),
        ("-o", "--output"),
        ("-e", "--error"),
        ("--export",),
        ("--comment",),
        ("-A", "--account"),
        ("-p", "--partition"),
        ("-M", "--clusters"),
        ("-t", "--time"),
        ("-C", "--constraint"),
        ("--qos",),
        ("--mem",),
        ("--mem-per-cpu",),
        ("-N", "--nodes"),
        ("-n", "--ntasks"),
        ("--ntasks-per-gpu",),
        ("-c", "--cpus-per-task"),
        ("--cpus-per-gpu",),
        ("--gres",),
        ("-G", "--gpus"),
        ("--reservation",),
        ("--exclude",),
        ("-D", "--chdir"),
        ("--wrap",),
        ("-d", "--dependency"),
        ("--array",),
    ):
        parser.add_argument(*flags)
    parser.add_argument("script", nargs="?")
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    if opts.array:
        return parser.error("job arrays are not supported by the stand-in")
    if opts.partition and opts.partition not in PARTITIONS:
        return parser.error(f"invalid partition specified: {opts.partition}")
    if opts.wrap is not None:
        script = f"#!/bin/sh\n{opts.wrap}\n"
    elif opts.script in (None, "/dev/stdin", "-"):
        script = sys.stdin.read()
    else:
        script = Path(opts.script).read_text()
    state = _state()
    with _locked(state):
        counter = state / "counter"
        jobid = str(int(counter.read_text()) + 1 if counter.exists() else 1001)
        counter.write_text(jobid)
    workdir = str(Path(opts.chdir or os.getcwd()).resolve())
    output = (opts.output or "slurm-%j.out").replace("%j", jobid)
    gpus = opts.gpus or (opts.gres.rsplit(":", 1)[-1] if opts.gres and opts.gres.startswith("gpu") else None)
    record = {
        "id": jobid,
        "name": opts.job_name or "sbatch",
        "comment": opts.comment,
        "partition": opts.partition,
        "account": opts.account,
        "cpus_per_task": opts.cpus_per_task,
        "cpus_per_gpu": opts.cpus_per_gpu,
        "mem_mb": opts.mem,
        "mem_mb_per_cpu": opts.mem_per_cpu,
        "time": opts.time,
        "gpus": gpus,
        "gres": opts.gres,
        "ntasks": opts.ntasks,
        "nodes": opts.nodes,
        "dependency": opts.dependency,
        "workdir": workdir,
        "output": str(Path(workdir, output)),
        "submitted": time.time(),
    }
    script_path = state / "jobs" / f"{jobid}.sh"
    script_path.write_text(script)
    script_path.chmod(0o755)
    (state / "jobs" / f"{jobid}.json").write_text(json.dumps(record))
    _append(state / "submissions.jsonl", {"id": jobid, "argv": argv, **record})
    env = dict(
        os.environ,
        SLURM_JOB_ID=jobid,
        SLURM_JOBID=jobid,
        SLURM_JOB_NAME=record["name"],
        SLURM_SUBMIT_DIR=os.getcwd(),
        SLURM_CPUS_PER_TASK=str(opts.cpus_per_task or 1),
    )
    if gpus:
        env["SLURM_GPUS"] = str(gpus)
    Path(record["output"]).parent.mkdir(parents=True, exist_ok=True)
    with open(record["output"], "ab") as log:
        # a session of its own, so scancel can end the job's whole process group
        subprocess.Popen(
            [sys.executable, str(_RUNNER), "run", jobid, *opts.script_args],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    print(jobid if opts.parsable else f"Submitted batch job {jobid}")
    return 0


def run(argv: list[str]) -> int:
    """The job itself (started by sbatch): run the script, then record its exit status atomically."""
    jobid, script_args = argv[0], argv[1:]
    state = _state()
    jobs = state / "jobs"
    (jobs / f"{jobid}.started").write_text(str(os.getpid()))
    rc = subprocess.call(["/bin/sh", str(jobs / f"{jobid}.sh"), *script_args])
    tmp = jobs / f"{jobid}.rc.tmp"
    tmp.write_text(str(rc))
    if not (jobs / f"{jobid}.rc").exists():  # scancel may have written "cancelled" first
        tmp.replace(jobs / f"{jobid}.rc")
    record = json.loads((jobs / f"{jobid}.json").read_text())
    _append(
        state / "finished.jsonl",
        {
            "id": jobid,
            "name": record["name"],
            "comment": record["comment"],
            "rc": rc,
            "seconds": round(time.time() - record["submitted"], 1),
        },
    )
    return rc


def _fields(spec: str) -> list[str]:
    return [f.split("%")[0].lower() for f in spec.split(",")]


def _value(field: str, job: dict, state: Path) -> str:
    return {
        "jobidraw": job["id"],
        "jobid": job["id"],
        "state": _status(state, job["id"]),
        "jobname": job["name"],
        "partition": job["partition"] or PARTITIONS[0],
        "nodelist": "localhost",
        "reason": "None",
        "account": "",
    }.get(field, "")


def sacct(argv: list[str]) -> int:
    parser = _Parser(prog="sacct")
    for flag in ("-X", "-P", "--parsable2", "--noheader", "-n", "-a", "--allusers"):
        parser.add_argument(flag, action="store_true")
    for flags in (
        ("-j", "--jobs"),
        ("--name",),
        ("-o", "--format"),
        ("-S", "--starttime"),
        ("-E", "--endtime"),
        ("-M", "--clusters"),
        ("-u", "--user"),
    ):
        parser.add_argument(*flags)
    opts, _ = parser.parse_known_args(argv)  # e.g. "| tail -1", which the plugin passes without a shell
    state = _state()
    ids = {j.split(".")[0] for j in opts.jobs.split(",")} if opts.jobs else None
    names = set(opts.name.split(",")) if opts.name else None
    fields = _fields(opts.format or "JobID,JobName,Partition,State")
    sep = "|" if (opts.parsable2 or opts.P) else " "
    if not (opts.noheader or opts.n):
        print(sep.join(f.upper() for f in fields))
    for job in _jobs(state):
        if (ids is None or job["id"] in ids) and (names is None or job["name"] in names):
            print(sep.join(_value(f, job, state) for f in fields))
    return 0


def squeue(argv: list[str]) -> int:
    parser = _Parser(prog="squeue")
    parser.add_argument("-h", "--noheader", action="store_true")
    for flags in (
        ("-j", "--jobs"),
        ("--name",),
        ("-o", "--format"),
        ("-t", "--states"),
        ("-u", "--user"),
        ("-M", "--clusters"),
    ):
        parser.add_argument(*flags)
    opts = parser.parse_args(argv)
    state = _state()
    ids = set(opts.jobs.split(",")) if opts.jobs else None
    names = set(opts.name.split(",")) if opts.name else None
    show_all = (opts.states or "").lower() == "all"
    fmt = opts.format or "%i %j %T"
    for job in _jobs(state):
        status = _status(state, job["id"])
        finished = status not in ("PENDING", "RUNNING")
        if (ids is None or job["id"] in ids) and (names is None or job["name"] in names) and (show_all or not finished):
            print(fmt.replace("%i", job["id"]).replace("%j", job["name"]).replace("%T", status))
    return 0


def scancel(argv: list[str]) -> int:
    state = _state()
    for jobid in (a for a in argv if not a.startswith("-")):
        started = state / "jobs" / f"{jobid}.started"
        rc_file = state / "jobs" / f"{jobid}.rc"
        if rc_file.exists():
            continue
        rc_file.write_text("cancelled")
        if started.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(started.read_text()), signal.SIGTERM)
    return 0


def srun(argv: list[str]) -> int:
    """A job step: log the step's options and run the command in place."""
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    options, command = argv[:split], argv[split:]
    if not command:
        sys.exit("srun: fatal: no command given")
    _append(
        _state() / "sruns.jsonl", {"job": os.environ.get("SLURM_JOB_ID"), "options": options, "command": command[:3]}
    )
    os.execvp(command[0], command)
    return 1  # not reached


def sinfo(argv: list[str]) -> int:
    print("PARTITION")
    print("\n".join(f"{p}*" if i == 0 else p for i, p in enumerate(PARTITIONS)))
    return 0


COMMANDS = {
    "sbatch": sbatch,
    "run": run,
    "sacct": sacct,
    "squeue": squeue,
    "scancel": scancel,
    "srun": srun,
    "sinfo": sinfo,
}


def main(command: str, argv: list[str]) -> int:
    return COMMANDS[command](argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
