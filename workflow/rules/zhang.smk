"""Zhang (2025), VLM2Vec feature strategies: Table 2 per reading, ours vs published, the paper's claims.

Runs when the config has ``studies.zhang2025`` (mmknockout.plan.StudyPlan adds the targets); the
logic is in mmknockout.analysis.zhang.
"""

ZHANG = PLAN.zhang or {"readings": {}, "models": [], "metrics": []}


rule zhang_table:
    input:
        knockout=paths.KNOCKOUT_TABLE,
    output:
        table=report(
            paths.ZHANG_TABLE,
            caption="../report/zhang2025_table.rst",
            category="Zhang 2025 VLM2Vec",
            labels={"table": "Table 2", "reading": "{reading}"},
        ),
    log:
        paths.log("report", "zhang2025_table2_{reading}"),
    wildcard_constraints:
        reading=pattern_of(PLAN.zhang_readings()),
    conda:
        ANALYSIS_ENV
    params:
        reading=lambda wc: wc.reading,
        columns=lambda wc: dict(ZHANG["readings"][wc.reading]),
        models=ZHANG["models"],
        metrics=ZHANG["metrics"],
    script:
        STEP


rule zhang_comparison:
    input:
        knockout=paths.KNOCKOUT_TABLE,
        reference=paths.ZHANG_REFERENCE,
    output:
        comparison_table=report(
            paths.ZHANG_COMPARISON,
            caption="../report/zhang2025_comparison.rst",
            category="Zhang 2025 VLM2Vec",
            labels={"table": "ours vs published"},
        ),
        claims_table=report(
            paths.ZHANG_CLAIMS,
            caption="../report/zhang2025_claims.rst",
            category="Zhang 2025 VLM2Vec",
            labels={"table": "the paper's claims"},
        ),
        figure_file=report(
            paths.ZHANG_FIGURE,
            caption="../report/zhang2025_figure.rst",
            category="Zhang 2025 VLM2Vec",
            labels={"table": "figure: ours vs published"},
        ),
    log:
        paths.log("report", "zhang2025_comparison"),
    conda:
        ANALYSIS_ENV
    params:
        readings={r: dict(c) for r, c in ZHANG["readings"].items()},
        models=ZHANG["models"],
        metrics=ZHANG["metrics"],
    script:
        STEP
