"""Item features: sentence-transformers text embeddings and image features, once per dataset."""


rule text_features:
    input:
        metadata=lambda wc: raw_path(wc.dataset, "metadata"),
        item_map=paths.ITEM_MAP,
    output:
        features=paths.TEXT_FEATURES,
        texts=paths.ITEM_TEXT,
    log:
        paths.log("text_features", "{dataset}_{encoder}"),
    benchmark:
        paths.benchmark("text_features", "{dataset}_{encoder}")
    wildcard_constraints:
        encoder=pattern_of(config["encoders"]["text"]),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=uses_gpu,
    params:
        model=lambda wc: text_encoder(wc)["model"],
        batch_size=lambda wc: text_encoder(wc)["batch_size"],
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP


rule image_features_upstream:
    input:
        features_file=lambda wc: raw_path(wc.dataset, "image_features"),
        item_map=paths.ITEM_MAP,
    output:
        features=paths.IMAGE_FEATURES,
        missing=paths.IMAGE_MISSING,
    log:
        paths.log("image_features", "{dataset}_{encoder}"),
    benchmark:
        paths.benchmark("image_features", "{dataset}_{encoder}")
    wildcard_constraints:
        encoder=pattern_of([e for e, s in config["encoders"]["image"].items() if s["kind"] == "upstream"]),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        dim=lambda wc: image_encoder(wc)["dim"],
    script:
        STEP


rule download_images:
    input:
        metadata=lambda wc: raw_path(wc.dataset, "metadata"),
        item_map=paths.ITEM_MAP,
    output:
        images=directory(paths.IMAGES),
        index=paths.IMAGES_INDEX,
        failures=paths.IMAGES_FAILED,
    log:
        paths.log("download_images", "{dataset}"),
    retries: 2
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        schemes=lambda wc: REGISTRY[wc.dataset].get("image_schemes"),
    script:
        STEP


rule image_features_encoder:
    input:
        index=paths.IMAGES_INDEX,
    output:
        features=paths.IMAGE_FEATURES,
        missing=paths.IMAGE_MISSING,
    log:
        paths.log("image_features", "{dataset}_{encoder}"),
    benchmark:
        paths.benchmark("image_features", "{dataset}_{encoder}")
    wildcard_constraints:
        encoder=pattern_of([e for e, s in config["encoders"]["image"].items() if s["kind"] in ("vit", "resnet")]),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=uses_gpu,
    params:
        kind=lambda wc: image_encoder(wc)["kind"],
        model=lambda wc: image_encoder(wc).get("model"),
        batch_size=lambda wc: image_encoder(wc)["batch_size"],
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP
