# Classifiers shared by the corruption, fault-localisation and streaming studies, trained from scratch.


rule train_model:
    output:
        weights=results("models", "{model}.safetensors"),
        metrics=results("models", "{model}.json"),
    params:
        checkpoint=lambda wc: results("models", f"{wc.model}.ckpt"),
    benchmark:
        results("benchmarks", "train_model_{model}.tsv")
    log:
        results("logs", "train_model_{model}.log"),
    threads: config["threads"]
    wildcard_constraints:
        model="|".join(config["models"]),
    script:
        "../scripts/train_model.py"
