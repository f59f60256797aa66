# Library-level checks: the sigma contract on real data (QQ-plot, false alarms), stream quietness, overhead.

_CAL = config["calibration"]


rule calibration_contract:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_CAL["models"]),
    output:
        drift=results("calibration", "contract_drift.csv"),
        counts=results("calibration", "contract_counts.csv"),
        qq=figure_outputs("calibration_qq"),
        contract=table_outputs("calibration_contract"),
        tail=table_outputs("calibration_tail"),
        sizes=table_outputs("calibration_size"),
        tail_figure=figure_outputs("calibration_tail_figure"),
        noise=table_outputs("calibration_noise"),
    benchmark:
        results("benchmarks", "calibration_contract.tsv")
    log:
        results("logs", "calibration_contract.log"),
    threads: config["threads"]
    script:
        "../scripts/calibration_contract.py"


ALL_TARGETS += rules.calibration_contract.output


def _every_core(wildcards):
    """All of this run's cores, so no other job runs beside wall-clock timings (the config's threads where a run
    declares no core count, e.g. when rules are only listed). The job computes on the config's `threads`
    (scripts/_common.py RULE_THREADS) whatever it is granted; a profile's set-threads replaces this."""
    from snakemake.exceptions import WorkflowError

    try:
        return workflow.cores
    except WorkflowError:
        return config["threads"]


rule overhead:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_CAL["overhead"]["models"]),
    output:
        overhead=table_outputs("monitor_overhead"),
        breakdown=table_outputs("monitor_overhead_breakdown"),
        calibration_cost=table_outputs("monitor_calibration_cost"),
    benchmark:
        results("benchmarks", "overhead.tsv")
    log:
        results("logs", "overhead.log"),
    threads: _every_core
    script:
        "../scripts/overhead.py"


ALL_TARGETS += rules.overhead.output


rule soak:
    output:
        memory=table_outputs("monitor_memory"),
        trace=results("calibration", "soak_trace.csv"),
    benchmark:
        results("benchmarks", "soak.tsv")
    log:
        results("logs", "soak.log"),
    threads: 1
    script:
        "../scripts/soak.py"


ALL_TARGETS += rules.soak.output
