#!/usr/bin/env python3
"""Answer the cluster-generic executor's status query for one SLURM job: running, success or failed.

Asks sacct first (it still knows finished jobs), then squeue. A job neither knows any more is reported as success:
Snakemake then checks that the job's outputs exist, so a job that failed unseen still fails there.
Standard library only, Python >= 3.6: it runs with the login node's python3.
"""

import subprocess
import sys

RUNNING = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "PREEMPTED",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}


def query(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    states = [line.split()[0] for line in out.decode().splitlines() if line.strip()]
    return states[0].rstrip("+") if states else None  # "CANCELLED by 123", "CANCELLED+"


def main(jobid):
    state = query(["sacct", "-j", jobid, "-X", "--noheader", "--parsable2", "--format=State"])
    if state is None:
        state = query(["squeue", "-h", "-j", jobid, "-o", "%T"])
    if state is None or state == "COMPLETED":
        print("success")
    elif state in RUNNING:
        print("running")
    else:  # FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL, DEADLINE
        print("failed")


if __name__ == "__main__":
    main(sys.argv[-1])
