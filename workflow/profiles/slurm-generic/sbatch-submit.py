#!/usr/bin/env python3
"""Submit one Snakemake jobscript with sbatch, asking for the job's threads and declared resources.

The cluster-generic executor calls this with the jobscript's path; the jobscript's second line carries the job's
properties (rule, threads, resources) as JSON. Prints the SLURM job id, which sbatch-status.py is later asked about.
Standard library only, Python >= 3.6: it runs with the login node's python3.
"""

import json
import os
import shlex
import subprocess
import sys

GPU_KEYS = ("gpu", "gpus", "nvidia_gpu")  # the first one present and > 0 becomes --gpus


def job_properties(jobscript):
    with open(jobscript) as handle:
        for line in handle:
            if line.startswith("# properties = "):
                return json.loads(line[len("# properties = ") :])
    sys.exit(f"sbatch-submit: no '# properties = ' line in {jobscript}")


def sbatch_args(props):
    resources = props.get("resources", {})
    name = props.get("rule") or props.get("groupid", "group")
    logdir = os.path.join(".snakemake", "slurm_logs", f"rule_{name}")
    os.makedirs(logdir, exist_ok=True)
    args = [
        "--parsable",
        f"--job-name=smk-{name}",
        f"--output={os.path.join(logdir, '%j.log')}",
        f"--cpus-per-task={props.get('threads', 1)}",
    ]
    if resources.get("mem_mb"):
        args.append(f"--mem={resources['mem_mb']}")
    if resources.get("runtime"):
        args.append(f"--time={resources['runtime']}")  # minutes
    gpus = next((int(resources[k]) for k in GPU_KEYS if resources.get(k)), 0)
    if gpus > 0:
        args.append(f"--gpus={gpus}")
    for key, flag in (
        ("slurm_partition", "--partition"),
        ("slurm_account", "--account"),
        ("qos", "--qos"),
        ("constraint", "--constraint"),
    ):
        if resources.get(key):
            args.append(f"{flag}={resources[key]}")
    args += shlex.split(str(resources.get("slurm_extra") or ""))
    return args


def main(jobscript):
    out = subprocess.check_output(["sbatch", *sbatch_args(job_properties(jobscript)), jobscript])
    # "<id>" or "<id>;<cluster>" with --parsable
    print(out.decode().strip().split(";")[0])


if __name__ == "__main__":
    main(sys.argv[-1])
