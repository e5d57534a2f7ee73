"""Figures and tables of the study beyond the knockout table: Figs. 1-3, Tables 2-3, Appendix Tables
4-10 next to the published numbers, the encoder swap, significance tests and the runtime table.

The logic is in mmknockout.analysis; which outputs a config asks for is mmknockout.plan.StudyPlan.
"""

ANALYSIS_ENV = "../../envs/plots.yaml"
# Analysis settings; not config keys, the study fixes them
SIGNIFICANCE_METRICS = ["NDCG@10", "Recall@10", "Precision@10"]
VISION_THRESHOLD = 5.0  # Table 2: NDCG@10 drop (%) under image noise on any dataset
EMBEDDING_SAMPLE = 2000  # Fig. 3: items in the UMAP map
EMBEDDING_SEED = 0


rule significance:
    input:
        selected=PLAN.selected_runs(),
        per_user=PLAN.selected_per_user(),
    output:
        table=report(
            paths.SIGNIFICANCE,
            caption="../report/significance.rst",
            category="Significance tests",
            labels={"table": "knockout vs baseline"},
        ),
    log:
        paths.log("report", "significance"),
    conda:
        ANALYSIS_ENV
    params:
        metrics=SIGNIFICANCE_METRICS,
    script:
        STEP


rule study_tables:
    input:
        knockout=paths.KNOCKOUT_TABLE,
        significance=paths.SIGNIFICANCE,
    output:
        table2=report(
            paths.TABLE2,
            caption="../report/table2.rst",
            category="Tables 2-3",
            labels={"table": "Table 2: vision-sensitive models"},
        ),
        table2_tex=paths.TABLE2_TEX,
        table3=report(
            paths.TABLE3,
            caption="../report/table3.rst",
            category="Tables 2-3",
            labels={"table": "Table 3: BM3, SLMRec, VBPR"},
        ),
        table3_tex=paths.TABLE3_TEX,
        encoder_swap=report(
            paths.ENCODER_SWAP,
            caption="../report/encoder_swap.rst",
            category="Encoder swap",
            labels={"table": "baseline per image encoder"},
        ),
    log:
        paths.log("report", "study_tables"),
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets,
        threshold=VISION_THRESHOLD,
    script:
        STEP


rule appendix_table:
    input:
        knockout=paths.KNOCKOUT_TABLE,
        index=paths.REFERENCE_INDEX,
    output:
        csv=report(
            paths.APPENDIX,
            caption="../report/appendix_table.rst",
            category="Appendix tables",
            subcategory="Table {table}",
            labels={"table": "Table {table}", "condition": "{name}"},
        ),
        tex=paths.APPENDIX_TEX,
    log:
        paths.log("report", "appendix_table{table}_{name}"),
    wildcard_constraints:
        table=r"\d+",
        name=pattern_of(PLAN.appendix.values()),
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets,
        table=lambda wc: int(wc.table),
    script:
        STEP


rule ours_vs_published:
    input:
        ours=PLAN.appendix_tables("csv"),
        index=paths.REFERENCE_INDEX,
        published=PLAN.published_tables(),
    output:
        table=report(
            paths.OURS_VS_PUBLISHED,
            caption="../report/ours_vs_published_table.rst",
            category="Ours vs published",
            labels={"output": "table"},
        ),
        figure=report(
            paths.OURS_VS_PUBLISHED_FIGURE,
            caption="../report/ours_vs_published.rst",
            category="Ours vs published",
            labels={"output": "scatter plot"},
        ),
    log:
        paths.log("report", "ours_vs_published"),
    conda:
        ANALYSIS_ENV
    params:
        datasets=list(config["datasets"]),
    script:
        STEP


rule fig1_knockout:
    input:
        knockout=paths.KNOCKOUT_TABLE,
    output:
        figure=report(
            paths.FIG1,
            caption="../report/fig1.rst",
            category="Fig. 1 knockout",
            subcategory="{dataset}",
            labels={"figure": "Fig. 1", "dataset": "{dataset}"},
        ),
    log:
        paths.log("report", "fig1_{dataset}"),
    conda:
        ANALYSIS_ENV
    params:
        dataset=lambda wc: wc.dataset,
        feature_set=lambda wc: PLAN.main[wc.dataset],
    script:
        STEP


rule fig2_noise_vs_constant:
    input:
        knockout=paths.KNOCKOUT_TABLE,
    output:
        figure=report(
            paths.FIG2,
            caption="../report/fig2.rst",
            category="Fig. 2 noise vs constant",
            labels={"figure": "Fig. 2"},
        ),
    log:
        paths.log("report", "fig2"),
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets,
        metric="NDCG@10",
    script:
        STEP


rule fig3_embeddings:
    input:
        unpack(lambda wc: feature_paths(wc.dataset, wc.feature_set)),
    output:
        figure=report(
            paths.FIG3,
            caption="../report/fig3.rst",
            category="Fig. 3 embeddings",
            subcategory="{dataset}",
            labels={"output": "figure", "dataset": "{dataset}", "feature set": "{feature_set}"},
        ),
        table=report(
            paths.EMBEDDING_STATS,
            caption="../report/embedding_stats.rst",
            category="Fig. 3 embeddings",
            subcategory="{dataset}",
            labels={"output": "statistics", "dataset": "{dataset}", "feature set": "{feature_set}"},
        ),
    log:
        paths.log("report", "fig3_{dataset}_{feature_set}"),
    conda:
        ANALYSIS_ENV
    resources:
        mem_mb=8000,
    params:
        encoders=lambda wc: {m: config["feature_sets"][wc.feature_set][m] for m in ("text", "image")},
        sample=EMBEDDING_SAMPLE,
        seed=EMBEDDING_SEED,
        title=lambda wc: f"Fig. 3: text vs image item embeddings, {wc.dataset} ({wc.feature_set} features)",
    script:
        STEP


rule runtime_table:
    input:
        # unnamed: training is over once the knockout table (and the VBPR sweep table) exist
        [paths.KNOCKOUT_TABLE] + ([paths.SWEEP_TABLE] if PLAN.sweeps else []),
    output:
        table=report(
            paths.RUNTIME,
            caption="../report/runtime.rst",
            category="Runtime",
            labels={"table": "seconds and memory per rule"},
        ),
    log:
        paths.log("report", "runtime"),
    conda:
        ANALYSIS_ENV
    params:
        benchmarks=paths.BENCHMARKS,
    script:
        STEP
