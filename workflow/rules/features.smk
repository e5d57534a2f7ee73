"""Item features: sentence-transformers text embeddings, image features, vision-language encoders
(CLIP, VLM2Vec, LVLM) in either slot and concatenations of them, once per dataset; the tiny demo
checkpoints and the download of the configured ones (fetch_models, on a machine with internet)."""

from mmknockout.features.hub import checkpoints as hub_checkpoints
from mmknockout.features.tiny_step import TINY, tiny_base


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
        encoder=pattern_of(encoders_of("text", ["sentence_transformers"])),
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


rule vl_text_features:
    input:
        tiny_checkpoints_of("text"),
        unpack(vl_inputs("text")),
    output:
        features=paths.TEXT_FEATURES,
        sidecar=paths.TEXT_SIDECAR,
    log:
        paths.log("vl_features", "{dataset}_text_{encoder}"),
    benchmark:
        paths.benchmark("vl_features", "{dataset}_text_{encoder}")
    wildcard_constraints:
        encoder=pattern_of(encoders_of("text", VL_KINDS)),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=32000,
        runtime=240,
        gpu=uses_gpu,
    params:
        encoder=lambda wc: dict(text_encoder(wc)),
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP


rule vl_image_features:
    input:
        tiny_checkpoints_of("image"),
        unpack(vl_inputs("image")),
    output:
        features=paths.IMAGE_FEATURES,
        sidecar=paths.IMAGE_SIDECAR,
    log:
        paths.log("vl_features", "{dataset}_image_{encoder}"),
    benchmark:
        paths.benchmark("vl_features", "{dataset}_image_{encoder}")
    wildcard_constraints:
        encoder=pattern_of(encoders_of("image", VL_KINDS)),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=32000,
        runtime=240,
        gpu=uses_gpu,
    params:
        encoder=lambda wc: dict(image_encoder(wc)),
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP


rule concat_features:
    input:
        parts=concat_inputs,
    output:
        features=paths.CONCAT_FEATURES,
        sidecar=paths.CONCAT_SIDECAR,
    log:
        paths.log("concat_features", "{dataset}_{slot_encoder}"),
    wildcard_constraints:
        slot_encoder=pattern_of(CONCAT),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    script:
        STEP


rule tiny_models:
    input:
        unpack(lambda wc: {"base": paths.fill(paths.TINY_MODEL, name=tiny_base(wc.name))} if tiny_base(wc.name) else {}),
    output:
        directory=directory(paths.TINY_MODEL),
    log:
        paths.log("tiny_models", "{name}"),
    wildcard_constraints:
        name=pattern_of(TINY),
    conda:
        "../../envs/features.yaml"
    params:
        name=lambda wc: wc.name,
    script:
        STEP


rule fetch_models:
    output:
        record=paths.FETCHED_MODELS,
    log:
        paths.log("fetch_models", "fetch_models"),
    localrule: True
    conda:
        "../../envs/features.yaml"
    params:
        checkpoints=hub_checkpoints(config),
        cache_dir=(config.get("hub") or {}).get("cache_dir"),
    script:
        STEP


rule keyword_features:
    input:
        source=keyword_source,
    output:
        features=paths.TEXT_FEATURES,
        matrix=paths.KEYWORD_MATRIX,
        vocabulary=paths.TEXT_SIDECAR,
    log:
        paths.log("keyword_features", "{dataset}_{encoder}"),
    wildcard_constraints:
        encoder=pattern_of(encoders_of("text", ["keywords"])),
    conda:
        "../../envs/features.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=60,
    params:
        encoder=lambda wc: dict(text_encoder(wc)),
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP
