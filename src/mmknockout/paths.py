"""The file layout of the workflow, in one place for the rules, the report, the analysis and the CLI.

Every path is relative to the working directory (the repository root for the workflow). Patterns use
Snakemake wildcards (``{dataset}``); :func:`fill` substitutes them. Logs and benchmark records of a
step mirror its output's wildcards under ``logs/<step>/`` and ``benchmarks/<step>/``.
"""

from __future__ import annotations

RESULTS = "results"
RAW = "resources/raw/{dataset}/{file}"
REFERENCE = "resources/reference"
REFERENCE_INDEX = REFERENCE + "/tables.csv"
REFERENCE_TABLE = REFERENCE + "/table{table}_{name}.csv"

# data stage
DATA = RESULTS + "/data/{dataset}"
INTER = DATA + "/{dataset}.inter"
STATS = DATA + "/stats.json"
ITEM_MAP = DATA + "/i_id_mapping.csv"
USER_MAP = DATA + "/u_id_mapping.csv"
USER_GRAPH = DATA + "/user_graph.npz"
ITEM_GRAPH = DATA + "/item_graph.npz"
IMAGES = DATA + "/images"
IMAGES_INDEX = DATA + "/images_index.tsv"
IMAGES_FAILED = DATA + "/images_failed.tsv"

# features stage
TEXT_FEATURES = DATA + "/features/text_{encoder}.npy"
ITEM_TEXT = DATA + "/item_text_{encoder}.tsv"
IMAGE_FEATURES = DATA + "/features/image_{encoder}.npy"
IMAGE_MISSING = DATA + "/features/image_{encoder}_missing.txt"
#: a JSON record next to each features file of the vl and concat encoders (encoder spec, rows, dim, ...)
TEXT_SIDECAR = DATA + "/features/text_{encoder}.json"
IMAGE_SIDECAR = DATA + "/features/image_{encoder}.json"
#: a keywords encoder's one-hot item x keyword matrix as scipy sparse (its dense twin is TEXT_FEATURES)
KEYWORD_MATRIX = DATA + "/features/text_{encoder}.npz"
#: a concat encoder's features and sidecar; ``{slot_encoder}`` is ``<slot>_<encoder>`` (text_dual)
CONCAT_FEATURES = DATA + "/features/{slot_encoder}.npy"
CONCAT_SIDECAR = DATA + "/features/{slot_encoder}.json"

# models: tiny random checkpoints for the demo, and the record of a fetch of the configured ones
MODELS = RESULTS + "/models"
TINY_MODELS = MODELS + "/tiny"
TINY_MODEL = TINY_MODELS + "/{name}"
FETCHED_MODELS = MODELS + "/fetched.json"

# training stage: one directory per (dataset, feature set, model, condition, grid point, seed)
RUN_KEY = "{dataset}/{feature_set}/{model}/{condition}/{params}/seed{seed}"
SELECTION_KEY = "{dataset}/{feature_set}/{model}/{condition}/seed{seed}"
RUN = RESULTS + "/runs/" + RUN_KEY
METRICS = RUN + "/metrics.json"
HISTORY = RUN + "/history.csv"
PER_USER = RUN + "/per_user.npz"
SELECTED = RESULTS + "/selected/" + SELECTION_KEY + ".json"

# analysis stage
TABLES = RESULTS + "/tables"
FIGURES = RESULTS + "/figures"
KNOCKOUT_TABLE = TABLES + "/knockout.csv"
KNOCKOUT_FIGURE = FIGURES + "/knockout_change.png"
SIGNIFICANCE = TABLES + "/significance.csv"
TABLE2 = TABLES + "/table2_vision_sensitive.csv"
TABLE2_TEX = TABLES + "/table2_vision_sensitive.tex"
TABLE3 = TABLES + "/table3_bm3_slmrec_vbpr.csv"
TABLE3_TEX = TABLES + "/table3_bm3_slmrec_vbpr.tex"
ENCODER_SWAP = TABLES + "/encoder_swap.csv"
APPENDIX = TABLES + "/appendix/table{table}_{name}.csv"
APPENDIX_TEX = TABLES + "/appendix/table{table}_{name}.tex"
OURS_VS_PUBLISHED = TABLES + "/ours_vs_published.csv"
OURS_VS_PUBLISHED_FIGURE = FIGURES + "/ours_vs_published.png"
FIG1 = FIGURES + "/fig1_knockout_{dataset}.png"
FIG2 = FIGURES + "/fig2_noise_vs_constant.png"
FIG3 = FIGURES + "/fig3_embeddings_{dataset}_{feature_set}.png"
EMBEDDING_STATS = TABLES + "/embedding_stats_{dataset}_{feature_set}.csv"
SWEEP_TABLE = TABLES + "/vbpr_sweeps.csv"
FIG4 = FIGURES + "/fig4_vbpr_sweeps.png"
RUNTIME = TABLES + "/runtime.csv"

# Zhang (2025), VLM2Vec feature strategies: Table 2 per reading, next to the published one
ZHANG_REFERENCE = REFERENCE + "/zhang2025_table2.csv"
ZHANG_TABLE = TABLES + "/zhang2025/table2_{reading}.csv"
ZHANG_COMPARISON = TABLES + "/zhang2025/ours_vs_published.csv"
ZHANG_CLAIMS = TABLES + "/zhang2025/claims.csv"
ZHANG_FIGURE = FIGURES + "/zhang2025_ours_vs_published.png"

# Kieu et al. (2025), VIRAL: Tables 1 and 2 next to the published ones, the modality contributions
KIEU_TABLE1_REFERENCE = REFERENCE + "/kieu2025_table1.csv"
KIEU_TABLE2_REFERENCE = REFERENCE + "/kieu2025_table2.csv"
KIEU_TABLE1 = TABLES + "/kieu2025/table1.csv"
KIEU_TABLE2 = TABLES + "/kieu2025/table2_ablation.csv"
KIEU_CONTRIBUTION = TABLES + "/kieu2025/modality_contribution.csv"
KIEU_CLAIMS = TABLES + "/kieu2025/claims.csv"
KIEU_FIGURE = FIGURES + "/kieu2025_modality_contribution.png"

# Pomo et al. (2025), LVLM representations: our values, the compared pairs and the three claims
POMO_RESULTS = TABLES + "/pomo2025/results.csv"
POMO_CASES = TABLES + "/pomo2025/claim_cases.csv"
POMO_CLAIMS = TABLES + "/pomo2025/claims.csv"
# Zhu et al. (2025), generative recommendation over semantic IDs: the leave-one-out split, one
# RQ-VAE per (feature set, modality or fused, condition, seed), one run per generative variant
SEQ_INTER = DATA + "/{dataset}.seq.inter"
SEQ_STATS = DATA + "/seq_stats.json"
SID_KEY = "{dataset}/{feature_set}/{sid_kind}/{condition}/seed{seed}"
SID_CODES = RESULTS + "/sids/" + SID_KEY + "/codes.npy"
SID_STATS = RESULTS + "/sids/" + SID_KEY + "/sid_stats.json"
GEN_KEY = "{dataset}/{feature_set}/{variant}/{condition}/{params}/seed{seed}"
GEN_RUN = RESULTS + "/genrec/" + GEN_KEY
GEN_METRICS = GEN_RUN + "/metrics.json"
GEN_HISTORY = GEN_RUN + "/history.csv"
GEN_PER_USER = GEN_RUN + "/per_user.npz"
GEN_PREDICTIONS = GEN_RUN + "/predictions.npz"
GEN_CHECKPOINT = GEN_RUN + "/checkpoint.pt"  # not a rule output: it survives a killed job
ZHU_REFERENCE = REFERENCE + "/zhu2025_table5.csv"
ZHU_DIAGNOSTICS_REFERENCE = REFERENCE + "/zhu2025_tables1to3.csv"
ZHU_TABLE = TABLES + "/zhu2025/table5.csv"
ZHU_COMPARISON = TABLES + "/zhu2025/ours_vs_published.csv"
ZHU_ORDERINGS = TABLES + "/zhu2025/orderings.csv"
ZHU_SID_TABLE = TABLES + "/zhu2025/sid_stats.csv"
ZHU_AMI = TABLES + "/zhu2025/sid_ami.csv"
ZHU_OVERLAP = TABLES + "/zhu2025/prediction_overlap.csv"
ZHU_PARTS = TABLES + "/zhu2025/hits_by_part.csv"
ZHU_KNOCKOUT = TABLES + "/zhu2025/knockout_change.csv"
ZHU_COLLAPSE_FIGURE = FIGURES + "/zhu2025_sid_collapse.png"
ZHU_AMI_FIGURE = FIGURES + "/zhu2025_sid_ami.png"
ZHU_KNOCKOUT_FIGURE = FIGURES + "/zhu2025_knockout_change.png"

# per-step records
LOGS = "logs"
BENCHMARKS = "benchmarks"
BENCH_OUT = BENCHMARKS + "/out"


def log(step: str, key: str) -> str:
    """The log file of one job of ``step``: ``logs/<step>/<key>.log``."""
    return f"{LOGS}/{step}/{key}.log"


def benchmark(step: str, key: str) -> str:
    """Snakemake's resource record of one job of ``step``: ``benchmarks/<step>/<key>.tsv``."""
    return f"{BENCHMARKS}/{step}/{key}.tsv"


def fill(pattern: str, **values: object) -> str:
    """Substitute wildcards; ``{name}`` left out of ``values`` is an error."""
    return pattern.format(**values)
