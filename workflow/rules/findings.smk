# Findings (issue 12): every README claim against the study tables, with 95% intervals and a verdict. Reads only what
# the study rules wrote (their tables and raw results); writes FINDINGS.md beside the tables.


rule findings:
    input:
        contract=figures("calibration_contract.csv"),
        contract_tail=figures("calibration_tail.csv"),
        contract_sizes=figures("calibration_size.csv"),
        contract_unet=figures("calibration_contract_unet.csv"),
        contract_tail_unet=figures("calibration_tail_unet.csv"),
        faults_accuracy=figures("faults_accuracy.csv"),
        faults_confusion=figures("faults_mode_confusion.csv"),
        faults_list=figures("faults_list.csv"),
        corruption_auroc=figures("corruption_auroc.csv"),
        corruption_layer_auroc=figures("corruption_layer_auroc.csv"),
        streams_curves=figures("streams_curves.csv"),
        streams_matched=figures("streams_matched.csv"),
        streams_delays=figures("streams_deepdrift_delays.csv"),
        streams_acceptance=figures("streams_monitor_acceptance.csv"),
        contract_drift=results("calibration", "contract_drift.csv"),
        fault_verdicts=results("faults", "verdicts.csv"),
        corruption_scores=expand(results("corruption", "{model}", "scores.csv.gz"), model=config["corruption"]["models"]),
        stream_runs=results("streams", "runs.csv"),
        mode_truth_recall=figures("mode_truth_recall.csv"),
        mode_truth_natural=figures("mode_truth_natural.csv"),
        mode_truth_mechanism=figures("mode_truth_mechanism.csv"),
        mode_truth_streams=figures("mode_truth_streams.csv"),
        replicates_summary=figures("replicates_summary.csv"),
        # claim 4 per training seed, where a replicate group is in the corruption benchmark (not in `default`)
        **({"replicates_detection": figures("replicates_detection.csv")} if replicate_detection_models() else {}),
    output:
        findings=report(figures("FINDINGS.md"), category="findings"),
        summary=table_outputs("findings_summary"),
    benchmark:
        results("benchmarks", "findings.tsv")
    log:
        results("logs", "findings.log"),
    threads: 1
    script:
        "../scripts/findings.py"


ALL_TARGETS += rules.findings.output
