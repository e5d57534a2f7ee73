"""The file layout of the workflow, in one place for the Snakefile and the CLI.

Every path is relative to the working directory (the repository root for the workflow).
"""
from __future__ import annotations

RAW = "resources/raw/{dataset}/{file}"
DATA = "results/data/{dataset}"
INTER = DATA + "/{dataset}.inter"
STATS = DATA + "/stats.json"
ITEM_MAP = DATA + "/i_id_mapping.csv"
USER_MAP = DATA + "/u_id_mapping.csv"
ITEM_TEXT = DATA + "/item_text.tsv"
TEXT_FEATURES = DATA + "/features/text_{encoder}.npy"
IMAGE_FEATURES = DATA + "/features/image_{encoder}.npy"
IMAGE_MISSING = DATA + "/features/image_{encoder}_missing.txt"
USER_GRAPH = DATA + "/user_graph.npz"
ITEM_GRAPH = DATA + "/item_graph.npz"
RUN = "results/runs/{dataset}/{feature_set}/{model}/{condition}/{params}/seed{seed}"
METRICS = RUN + "/metrics.json"
HISTORY = RUN + "/history.csv"
PER_USER = RUN + "/per_user.npz"
IMAGES = DATA + "/images"
IMAGES_INDEX = DATA + "/images_index.tsv"
IMAGES_FAILED = DATA + "/images_failed.tsv"
SELECTED = "results/selected/{dataset}/{feature_set}/{model}/{condition}/seed{seed}.json"
TABLES = "results/tables"
FIGURES = "results/figures"
LOGS = "logs"
BENCHMARKS = "benchmarks"


def fill(pattern: str, **values) -> str:
    return pattern.format(**values)
