# U-Net diffusion memorisation study: one training job and one evaluation job per (N, seed), then a report.
# Training resumes from its checkpoint folder when a job was killed; evaluation rereads the finished checkpoints.

_DIFF = config["diffusion"]
_DIFF_RUNS = expand("N{n}_s{seed}", n=_DIFF["sizes"], seed=_DIFF["seeds"])
_DIFF_FRAMES = ("memorisation", "loss", "drift", "geometry")


rule diffusion_train:
    output:
        manifest=results("diffusion", "{run}", "train.json"),
    params:
        folder=lambda wc: results("diffusion", wc.run, "checkpoints"),
    benchmark:
        results("benchmarks", "diffusion_train_{run}.tsv")
    log:
        results("logs", "diffusion_train_{run}.log"),
    threads: _DIFF["threads"]
    wildcard_constraints:
        run=r"N\d+_s\d+",
    script:
        "../scripts/diffusion_train.py"


rule diffusion_evaluate:
    input:
        manifest=results("diffusion", "{run}", "train.json"),
    output:
        memorisation=results("diffusion", "{run}", "memorisation.csv"),
        loss=results("diffusion", "{run}", "loss.csv"),
        drift=results("diffusion", "{run}", "drift.csv"),
        geometry=results("diffusion", "{run}", "geometry.csv"),
        samples=results("diffusion", "{run}", "samples.safetensors"),
    benchmark:
        results("benchmarks", "diffusion_evaluate_{run}.tsv")
    log:
        results("logs", "diffusion_evaluate_{run}.log"),
    threads: _DIFF["threads"]
    wildcard_constraints:
        run=r"N\d+_s\d+",
    script:
        "../scripts/diffusion_evaluate.py"


rule diffusion_report:
    input:
        **{f: expand(results("diffusion", "{run}", f"{f}.csv"), run=_DIFF_RUNS) for f in _DIFF_FRAMES},
        samples=expand(results("diffusion", "{run}", "samples.safetensors"), run=_DIFF_RUNS),
    output:
        anatomy=figure_outputs("diffusion_anatomy"),
        memorisation=figure_outputs("diffusion_memorisation"),
        bottleneck=figure_outputs("diffusion_bottleneck"),
        samples=figure_outputs("diffusion_samples"),
        detectors=figure_outputs("diffusion_detectors"),
        onsets=table_outputs("diffusion_onsets"),
        onset_summary=table_outputs("diffusion_onset_summary"),
        bottleneck_blocks=table_outputs("diffusion_bottleneck_blocks"),
        memorised=table_outputs("diffusion_memorised"),
        blocks=table_outputs("diffusion_blocks"),
        findings=figures("diffusion_findings.md"),
    benchmark:
        results("benchmarks", "diffusion_report.tsv")
    log:
        results("logs", "diffusion_report.log"),
    threads: 1
    script:
        "../scripts/diffusion_report.py"


ALL_TARGETS += rules.diffusion_report.output


# The library's sigma contract on one trained U-Net's blocks at fixed timesteps (settings: calibration.unet_contract).
_UNET = config["calibration"]["unet_contract"]


rule calibration_contract_unet:
    input:
        manifest=results("diffusion", f"N{_UNET['n_train']}_s{_UNET['seed']}", "train.json"),
    output:
        counts=results("calibration", "unet_contract_counts.csv"),
        contract=table_outputs("calibration_contract_unet"),
        tail=table_outputs("calibration_tail_unet"),
    benchmark:
        results("benchmarks", "calibration_contract_unet.tsv")
    log:
        results("logs", "calibration_contract_unet.log"),
    threads: 1
    script:
        "../scripts/calibration_contract_unet.py"


ALL_TARGETS += rules.calibration_contract_unet.output
