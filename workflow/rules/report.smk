"""Figures and tables of the study beyond the knockout table: Figs. 1-3, Tables 2-3, Appendix Tables
4-10 next to the published numbers, the encoder swap, significance tests and the runtime table.

Jobs read files and get their settings as params; the logic is in mmknockout.analysis
(ReportPlan in analysis/tables.py says which outputs a config asks for).
"""

import pandas as _pd

from mmknockout.analysis.tables import ReportPlan

KNOCKOUT_TABLE = f"{paths.TABLES}/knockout.csv"
SIGNIFICANCE = f"{paths.TABLES}/significance.csv"
REFERENCE_INDEX = "resources/reference/tables.csv"
PLAN = ReportPlan(config, _pd.read_csv(workflow.source_path("../../resources/reference/tables.csv")))
ANALYSIS_ENV = "../../envs/plots.yaml"
# Analysis settings; not config keys, the study fixes them
SIGNIFICANCE_METRICS = "NDCG@10,Recall@10,Precision@10"
VISION_THRESHOLD = 5.0  # Table 2: NDCG@10 drop (%) under image noise on any dataset
EMBEDDING_SAMPLE = 2000  # Fig. 3: items in the UMAP map
EMBEDDING_SEED = 0

# the final outputs of this file; `rule all` (Snakefile) includes them
report_targets = lambda: PLAN.targets()


rule significance:
    input:
        table=KNOCKOUT_TABLE,
        selected=selected_runs(),
    output:
        report(SIGNIFICANCE, caption="../report/significance.rst", category="Significance tests",
               labels={"table": "knockout vs baseline"}),
    log:
        "logs/report/significance.log",
    conda:
        ANALYSIS_ENV
    params:
        metrics=SIGNIFICANCE_METRICS,
    shell:
        "python -m mmknockout significance --metrics {params.metrics} --out {output} {input.selected:q} > {log} 2>&1"


rule study_tables:
    input:
        table=KNOCKOUT_TABLE,
        significance=SIGNIFICANCE,
    output:
        table2=report(f"{paths.TABLES}/table2_vision_sensitive.csv", caption="../report/table2.rst",
                      category="Tables 2-3", labels={"table": "Table 2: vision-sensitive models"}),
        table2_tex=f"{paths.TABLES}/table2_vision_sensitive.tex",
        table3=report(f"{paths.TABLES}/table3_bm3_slmrec_vbpr.csv", caption="../report/table3.rst",
                      category="Tables 2-3", labels={"table": "Table 3: BM3, SLMRec, VBPR"}),
        table3_tex=f"{paths.TABLES}/table3_bm3_slmrec_vbpr.tex",
        swap=report(f"{paths.TABLES}/encoder_swap.csv", caption="../report/encoder_swap.rst",
                    category="Encoder swap", labels={"table": "baseline per image encoder"}),
    log:
        "logs/report/study_tables.log",
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets_json(),
        threshold=VISION_THRESHOLD,
    shell:
        "python -m mmknockout study-tables --knockout {input.table} --significance {input.significance}"
        " --feature-sets {params.feature_sets:q} --threshold {params.threshold}"
        " --table2 {output.table2} --table2-tex {output.table2_tex} --table3 {output.table3}"
        " --table3-tex {output.table3_tex} --encoder-swap {output.swap} > {log} 2>&1"


rule appendix_table:
    input:
        table=KNOCKOUT_TABLE,
        index=REFERENCE_INDEX,
    output:
        csv=report(f"{paths.TABLES}/appendix/table{{table}}_{{name}}.csv", caption="../report/appendix_table.rst",
                   category="Appendix tables", subcategory="Table {table}",
                   labels={"table": "Table {table}", "condition": "{name}"}),
        tex=f"{paths.TABLES}/appendix/table{{table}}_{{name}}.tex",
    log:
        "logs/report/appendix_table{table}_{name}.log",
    wildcard_constraints:
        table=r"\d+",
        name=pattern_of([re.escape(n) for n in PLAN.appendix.values()]),
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets_json(),
        title=lambda wc: PLAN.titles.get(int(wc.table), ""),
    shell:
        "python -m mmknockout appendix-table --knockout {input.table} --feature-sets {params.feature_sets:q}"
        " --table {wildcards.table} --index {input.index} --out {output.csv} --tex {output.tex} > {log} 2>&1"


rule ours_vs_published:
    input:
        ours=[PLAN.appendix_path(t, "csv") for t in sorted(PLAN.appendix)],
        index=REFERENCE_INDEX,
        published=[f"resources/reference/table{t}_{n}.csv" for t, n in sorted(PLAN.appendix.items())],
    output:
        table=report(f"{paths.TABLES}/ours_vs_published.csv", caption="../report/ours_vs_published_table.rst",
                     category="Ours vs published", labels={"output": "table"}),
        figure=report(f"{paths.FIGURES}/ours_vs_published.png", caption="../report/ours_vs_published.rst",
                      category="Ours vs published", labels={"output": "scatter plot"}),
    log:
        "logs/report/ours_vs_published.log",
    conda:
        ANALYSIS_ENV
    params:
        reference=lambda wc, input: os.path.dirname(input.index),
        datasets=",".join(config["datasets"]),
    shell:
        "python -m mmknockout compare-published --reference-dir {params.reference} --datasets {params.datasets:q}"
        " --out {output.table} --figure {output.figure} {input.ours:q} > {log} 2>&1"


rule fig1_knockout:
    input:
        KNOCKOUT_TABLE,
    output:
        report(f"{paths.FIGURES}/fig1_knockout_{{dataset}}.png", caption="../report/fig1.rst",
               category="Fig. 1 knockout", subcategory="{dataset}", labels={"figure": "Fig. 1", "dataset": "{dataset}"}),
    log:
        "logs/report/fig1_{dataset}.log",
    conda:
        ANALYSIS_ENV
    params:
        feature_set=lambda wc: PLAN.main[wc.dataset],
    shell:
        "python -m mmknockout knockout-figure --knockout {input} --dataset {wildcards.dataset}"
        " --feature-set {params.feature_set} --out {output} > {log} 2>&1"


rule fig2_noise_vs_constant:
    input:
        KNOCKOUT_TABLE,
    output:
        report(f"{paths.FIGURES}/fig2_noise_vs_constant.png", caption="../report/fig2.rst",
               category="Fig. 2 noise vs constant", labels={"figure": "Fig. 2"}),
    log:
        "logs/report/fig2.log",
    conda:
        ANALYSIS_ENV
    params:
        feature_sets=PLAN.feature_sets_json(),
        metric="NDCG@10",
    shell:
        "python -m mmknockout noise-constant-figure --knockout {input} --feature-sets {params.feature_sets:q}"
        " --metric {params.metric} --out {output} > {log} 2>&1"


rule fig3_embeddings:
    input:
        unpack(lambda wc: feature_paths(wc.dataset, wc.feature_set)),
    output:
        figure=report(f"{paths.FIGURES}/fig3_embeddings_{{dataset}}_{{feature_set}}.png", caption="../report/fig3.rst",
                      category="Fig. 3 embeddings", subcategory="{dataset}",
                      labels={"output": "figure", "dataset": "{dataset}", "feature set": "{feature_set}"}),
        table=report(f"{paths.TABLES}/embedding_stats_{{dataset}}_{{feature_set}}.csv",
                     caption="../report/embedding_stats.rst", category="Fig. 3 embeddings", subcategory="{dataset}",
                     labels={"output": "statistics", "dataset": "{dataset}", "feature set": "{feature_set}"}),
    log:
        "logs/report/fig3_{dataset}_{feature_set}.log",
    wildcard_constraints:
        feature_set=pattern_of([re.escape(f) for f in config["feature_sets"]]),
    conda:
        ANALYSIS_ENV
    resources:
        mem_mb=8000,
    params:
        encoders=lambda wc: "text={text},image={image}".format(**feature_set(wc.feature_set)),
        sample=EMBEDDING_SAMPLE,
        seed=EMBEDDING_SEED,
        title=lambda wc: f"Fig. 3: text vs image item embeddings, {wc.dataset} ({wc.feature_set} features)",
    shell:
        "python -m mmknockout embeddings --text {input.text} --image {input.image} --encoders {params.encoders:q}"
        " --title {params.title:q} --sample {params.sample} --seed {params.seed}"
        " --table {output.table} --figure {output.figure} > {log} 2>&1"


rule runtime_table:
    input:
        # training is over once the knockout table (and the VBPR sweep table) exist
        [KNOCKOUT_TABLE] + ([f"{paths.TABLES}/vbpr_sweeps.csv"] if SWEEPS else []),
    output:
        report(f"{paths.TABLES}/runtime.csv", caption="../report/runtime.rst", category="Runtime",
               labels={"table": "seconds and memory per rule"}),
    log:
        "logs/report/runtime.log",
    conda:
        ANALYSIS_ENV
    params:
        benchmarks=paths.BENCHMARKS,
    shell:
        "python -m mmknockout runtime --benchmarks {params.benchmarks} --out {output} > {log} 2>&1"
