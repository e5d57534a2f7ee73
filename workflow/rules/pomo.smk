"""Pomo et al. (2025), LVLM representations: our values and the paper's three claims.

Runs when the config has ``studies.pomo2025`` (mmknockout.plan.StudyPlan adds the targets); the
logic is in mmknockout.analysis.pomo. The keyword one-hot comes from rule keyword_features.
"""


rule pomo_claims:
    input:
        knockout=paths.KNOCKOUT_TABLE,
    output:
        results_table=report(
            paths.POMO_RESULTS,
            caption="../report/pomo2025_results.rst",
            category="Pomo 2025 LVLM",
            labels={"table": "our values"},
        ),
        cases_table=report(
            paths.POMO_CASES,
            caption="../report/pomo2025_cases.rst",
            category="Pomo 2025 LVLM",
            labels={"table": "compared pairs"},
        ),
        claims_table=report(
            paths.POMO_CLAIMS,
            caption="../report/pomo2025_claims.rst",
            category="Pomo 2025 LVLM",
            labels={"table": "the paper's claims"},
        ),
    log:
        paths.log("report", "pomo2025_claims"),
    conda:
        ANALYSIS_ENV
    params:
        study=PLAN.pomo or {},
        datasets={ds: list(spec["feature_sets"]) for ds, spec in config["datasets"].items()},
    script:
        STEP
