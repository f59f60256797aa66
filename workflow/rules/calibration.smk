# Library-level checks: the sigma contract on real data (QQ-plot, false alarms), stream quietness, overhead.

_CAL = config["calibration"]


rule calibration_contract:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_CAL["models"]),
    output:
        drift=results("calibration", "contract_drift.csv"),
        qq=figure_outputs("calibration_qq"),
        contract=table_outputs("calibration_contract"),
        noise=table_outputs("calibration_noise"),
    benchmark:
        results("benchmarks", "calibration_contract.tsv")
    log:
        results("logs", "calibration_contract.log"),
    threads: config["threads"]
    script:
        "../scripts/calibration_contract.py"


ALL_TARGETS += rules.calibration_contract.output


rule overhead:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_CAL["overhead"]["models"]),
    output:
        overhead=table_outputs("monitor_overhead"),
    benchmark:
        results("benchmarks", "overhead.tsv")
    log:
        results("logs", "overhead.log"),
    threads: config["threads"]
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
