"""Kieu et al. (2025), VIRAL: Tables 1 and 2 ours vs published, the modality contributions and claims.

Runs when the config has ``studies.kieu2025`` (mmknockout.plan.StudyPlan adds the targets and the
fusion-ablation runs, PLAN.kieu_fusion_records); the logic is in mmknockout.analysis.kieu.
"""

KIEU = PLAN.kieu or {
    "models": [],
    "metrics": [],
    "viral": "",
    "table1": [],
    "contribution": {"reference": "", "vlm": "", "models": [], "conditions": [], "metrics": []},
}


rule kieu_table1:
    input:
        knockout=paths.KNOCKOUT_TABLE,
        reference=paths.KIEU_TABLE1_REFERENCE,
    output:
        table=report(
            paths.KIEU_TABLE1,
            caption="../report/kieu2025_table1.rst",
            category="Kieu 2025 VIRAL",
            labels={"table": "Table 1, ours vs published"},
        ),
    log:
        paths.log("report", "kieu2025_table1"),
    conda:
        ANALYSIS_ENV
    params:
        models=KIEU["models"],
        metrics=KIEU["metrics"],
        feature_sets=KIEU["table1"],
        viral=KIEU["viral"],
    script:
        STEP


rule kieu_table2:
    input:
        knockout=paths.KNOCKOUT_TABLE,
        reference=paths.KIEU_TABLE2_REFERENCE,
        records=PLAN.kieu_fusion_records(),
    output:
        table=report(
            paths.KIEU_TABLE2,
            caption="../report/kieu2025_table2.rst",
            category="Kieu 2025 VIRAL",
            labels={"table": "Table 2 (ablation), ours vs published"},
        ),
    log:
        paths.log("report", "kieu2025_table2"),
    conda:
        ANALYSIS_ENV
    params:
        viral=KIEU["viral"],
        original=KIEU.get("original"),
        notitle=KIEU.get("notitle"),
        metric=config["training"]["valid_metric"],
        selection=config["selection"],
    script:
        STEP


rule kieu_contribution:
    input:
        knockout=paths.KNOCKOUT_TABLE,
    output:
        table=report(
            paths.KIEU_CONTRIBUTION,
            caption="../report/kieu2025_contribution.rst",
            category="Kieu 2025 VIRAL",
            labels={"table": "modality contribution"},
        ),
        claims_table=report(
            paths.KIEU_CLAIMS,
            caption="../report/kieu2025_claims.rst",
            category="Kieu 2025 VIRAL",
            labels={"table": "the paper's claims"},
        ),
        figure_file=report(
            paths.KIEU_FIGURE,
            caption="../report/kieu2025_figure.rst",
            category="Kieu 2025 VIRAL",
            labels={"table": "figure: modality contribution"},
        ),
    log:
        paths.log("report", "kieu2025_contribution"),
    conda:
        ANALYSIS_ENV
    params:
        reference=KIEU["contribution"]["reference"],
        vlm=KIEU["contribution"]["vlm"],
        models=KIEU["contribution"]["models"],
        conditions=KIEU["contribution"]["conditions"],
        metrics=KIEU["contribution"]["metrics"],
    script:
        STEP
