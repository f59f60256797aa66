# Fault-localisation benchmark: faults injected at known modules; does the doctor find where and how it broke?
# A development and a held-out fault set, clean control batches, and trivial / per-layer peer localisers beside it.

_FAULTS = config["faults"]


rule fault_localisation:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_FAULTS["models"]),
    output:
        verdicts=results("faults", "verdicts.csv"),
        faulted_outputs=results("faults", "faulted_outputs.npz"),
        accuracy=table_outputs("faults_accuracy"),
        mode_confusion=table_outputs("faults_mode_confusion"),
        faults=table_outputs("faults_list"),
        corruption_modes=table_outputs("faults_corruption_modes"),
        onset_confusion=figure_outputs("faults_onset_confusion"),
        detection=figure_outputs("faults_detection"),
        localisers=figure_outputs("faults_localisers"),
    params:
        cache_dir=results("cache", "corruptions"),
    benchmark:
        results("benchmarks", "fault_localisation.tsv")
    log:
        results("logs", "fault_localisation.log"),
    threads: config["threads"]
    script:
        "../scripts/fault_localisation.py"


ALL_TARGETS += rules.fault_localisation.output
