"""Zhu et al. (2025), generative recommendation over multimodal semantic IDs (TIGER, MGR-EF/LF/LF++).

Runs when the config has ``studies.zhu2025`` (mmknockout.plan.StudyPlan adds the targets; the jobs
are mmknockout.genrec.plan.ZhuPlan's): the leave-one-out split, one RQ-VAE per (semantic-ID kind,
condition, seed) on the knocked-out features, one run per (variant, condition, learning rate, seed),
the tables and figures of mmknockout.analysis.zhu.
"""

ZHU = PLAN.zhu
ZHU_STUDY = (config.get("studies") or {}).get("zhu2025") or {}
GENREC_ENV = "../../envs/features.yaml"  # torch (CUDA build), transformers and scikit-learn


rule seq_split:
    input:
        unpack(seq_split_inputs),
    output:
        seq_inter=paths.SEQ_INTER,
        seq_stats=paths.SEQ_STATS,
    log:
        paths.log("seq_split", "{dataset}"),
    conda:
        "../../envs/data.yaml"
    params:
        kcore=lambda wc: config["datasets"][wc.dataset]["kcore"],
    script:
        STEP


rule semantic_ids:
    input:
        unpack(sid_inputs),
    output:
        codes=paths.SID_CODES,
        sid_stats=paths.SID_STATS,
    log:
        paths.log("semantic_ids", paths.SID_KEY),
    benchmark:
        paths.benchmark("semantic_ids", paths.SID_KEY)
    wildcard_constraints:
        sid_kind="text|image|fused",
    conda:
        GENREC_ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=uses_gpu,
    params:
        kind=lambda wc: wc.sid_kind,
        condition=lambda wc: wc.condition,
        condition_spec=lambda wc: dict(config["conditions"][wc.condition] or {}),
        rqvae=ZHU_STUDY.get("rqvae"),
        fusion=ZHU_STUDY.get("fusion"),
        seed=lambda wc: int(wc.seed),
        device=config["training"]["device"],
        threads=lambda wc, threads: threads,
    script:
        STEP


rule train_genrec:
    input:
        unpack(genrec_inputs),
    output:
        metrics=paths.GEN_METRICS,
        history=paths.GEN_HISTORY,
        per_user_file=paths.GEN_PER_USER,
        predictions=paths.GEN_PREDICTIONS,
    log:
        paths.log("train_genrec", paths.GEN_KEY),
    benchmark:
        paths.benchmark("train_genrec", paths.GEN_KEY)
    wildcard_constraints:
        variant=pattern_of(ZHU.variants if ZHU else []),
    conda:
        GENREC_ENV
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
        gpu=uses_gpu,
    params:
        spec=lambda wc: ZHU.run_spec(wc.dataset, wc.variant, wc.condition, wc.params, wc.seed),
        checkpoint=lambda wc: paths.fill(paths.GEN_CHECKPOINT, **wc),
        threads=lambda wc, threads: threads,
    script:
        STEP


rule zhu_sids:
    input:
        stats=ZHU.sid_files(paths.SID_STATS) if ZHU else [],
        codes=ZHU.sid_files(paths.SID_CODES) if ZHU else [],
    output:
        sid_table_file=report(
            paths.ZHU_SID_TABLE,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "semantic IDs"},
        ),
        ami_file=report(
            paths.ZHU_AMI, caption="../report/zhu2025.rst", category="Zhu 2025 MGR", labels={"table": "AMI"}
        ),
        collapse_file=report(
            paths.ZHU_COLLAPSE_FIGURE,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "figure: unique prefixes"},
        ),
        ami_figure_file=report(
            paths.ZHU_AMI_FIGURE,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "figure: AMI"},
        ),
    log:
        paths.log("report", "zhu2025_sids"),
    conda:
        ANALYSIS_ENV
    params:
        sid_keys=ZHU.sid_keys() if ZHU else [],
        conditions=ZHU.conditions if ZHU else [],
    script:
        STEP


rule zhu_tables:
    input:
        records=ZHU.run_files(paths.GEN_METRICS) if ZHU else [],
        predictions=ZHU.run_files(paths.GEN_PREDICTIONS) if ZHU else [],
        reference=paths.ZHU_REFERENCE,
        diagnostics_reference=paths.ZHU_DIAGNOSTICS_REFERENCE,
        ami_file=paths.ZHU_AMI,
        knockout=paths.KNOCKOUT_TABLE,
    output:
        table=report(
            paths.ZHU_TABLE, caption="../report/zhu2025.rst", category="Zhu 2025 MGR", labels={"table": "Table 5"}
        ),
        comparison_file=report(
            paths.ZHU_COMPARISON,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "ours vs published"},
        ),
        orderings_file=report(
            paths.ZHU_ORDERINGS,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "orderings"},
        ),
        overlap_file=report(
            paths.ZHU_OVERLAP,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "prediction overlap"},
        ),
        parts_file=report(
            paths.ZHU_PARTS,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "Hits@5 by part"},
        ),
        knockout_file=report(
            paths.ZHU_KNOCKOUT,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "knockout change"},
        ),
        knockout_figure_file=report(
            paths.ZHU_KNOCKOUT_FIGURE,
            caption="../report/zhu2025.rst",
            category="Zhu 2025 MGR",
            labels={"table": "figure: knockout change"},
        ),
    log:
        paths.log("report", "zhu2025_tables"),
    conda:
        ANALYSIS_ENV
    params:
        run_keys=ZHU.run_keys() if ZHU else [],
        valid_metric=ZHU_STUDY.get("valid_metric"),
        topk=ZHU_STUDY.get("topk"),
        variants=ZHU.variants if ZHU else [],
        conditions=ZHU.conditions if ZHU else [],
        feature_set=ZHU_STUDY.get("feature_set"),
        ranking_models=ZHU.ranking_models if ZHU else [],
    script:
        STEP
