"""Item features: sentence-transformers text embeddings and image features, once per dataset."""


rule text_features:
    input:
        metadata=lambda wc: raw_path(wc.dataset, "metadata"),
        item_map=paths.ITEM_MAP,
    output:
        features=paths.TEXT_FEATURES,
        texts=paths.fill(paths.ITEM_TEXT, dataset="{dataset}").replace(".tsv", "_{encoder}.tsv"),
    log:
        "logs/text_features/{dataset}_{encoder}.log",
    benchmark:
        "benchmarks/text_features/{dataset}_{encoder}.tsv"
    wildcard_constraints:
        encoder=pattern_of(list(config["encoders"].get("text", {}))),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=uses_gpu,
    params:
        model=lambda wc: text_encoder(wc)["model"],
        batch_size=lambda wc: text_encoder(wc).get("batch_size", 64),
        device=config["training"].get("device", "cpu"),
    shell:
        "python -m mmknockout text-features --metadata {input.metadata} --item-map {input.item_map} --model {params.model}"
        " --batch-size {params.batch_size} --device {params.device} --out {output.features}"
        " --text-out {output.texts} --threads {threads} > {log} 2>&1"


rule image_features_upstream:
    input:
        features_file=lambda wc: raw_path(wc.dataset, "image_features"),
        item_map=paths.ITEM_MAP,
    output:
        features=paths.IMAGE_FEATURES,
        missing=paths.IMAGE_MISSING,
    log:
        "logs/image_features/{dataset}_{encoder}.log",
    benchmark:
        "benchmarks/image_features/{dataset}_{encoder}.tsv"
    wildcard_constraints:
        encoder=pattern_of([e for e, s in config["encoders"].get("image", {}).items() if s["kind"] == "upstream"]),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        dim=lambda wc: image_encoder(wc).get("dim", 4096),
    shell:
        "python -m mmknockout image-features --features-file {input.features_file} --item-map {input.item_map}"
        " --dim {params.dim} --out {output.features} --missing {output.missing} > {log} 2>&1"


rule download_images:
    input:
        metadata=lambda wc: raw_path(wc.dataset, "metadata"),
        item_map=paths.ITEM_MAP,
    output:
        images=directory(paths.IMAGES),
        index=paths.IMAGES_INDEX,
        failures=paths.IMAGES_FAILED,
    log:
        "logs/download_images/{dataset}.log",
    retries: 2
    localrule: True
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mmknockout download-images --metadata {input.metadata} --item-map {input.item_map} --out-dir {output.images}"
        " --index {output.index} --failures {output.failures} > {log} 2>&1"


rule image_features_encoder:
    input:
        index=paths.IMAGES_INDEX,
    output:
        features=paths.IMAGE_FEATURES,
        missing=paths.IMAGE_MISSING,
    log:
        "logs/image_features/{dataset}_{encoder}.log",
    benchmark:
        "benchmarks/image_features/{dataset}_{encoder}.tsv"
    wildcard_constraints:
        encoder=pattern_of([e for e, s in config["encoders"].get("image", {}).items() if s["kind"] in ("vit", "resnet")]),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=uses_gpu,
    params:
        kind=lambda wc: image_encoder(wc)["kind"],
        model=lambda wc: f"--model {image_encoder(wc)['model']}" if image_encoder(wc).get("model") else "",
        batch_size=lambda wc: image_encoder(wc).get("batch_size", 32),
        device=config["training"].get("device", "cpu"),
    shell:
        "python -m mmknockout vision-features --index {input.index} --kind {params.kind} {params.model}"
        " --batch-size {params.batch_size} --device {params.device} --out {output.features}"
        " --missing {output.missing} --threads {threads} > {log} 2>&1"
