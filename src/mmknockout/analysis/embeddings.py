"""Fig. 3: how text and image item embeddings are distributed (both L2-normalised).

Statistics per modality, on *all* items with a non-zero feature row, after L2-normalising each row:

* ``mean_pairwise_cosine``: mean cosine over all ordered pairs i != j, exactly
  ``(||sum_i x_i||^2 - n) / (n (n - 1))`` for unit rows;
* ``mean_distance_to_centroid``: mean Euclidean distance of the rows to their mean;
* ``effective_rank``: ``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` the normalised singular values
  of the *centred* normalised matrix (Roy & Vetterli 2007); between 1 and min(n, d);
* ``top10_variance_share``: share of the total variance in the first 10 principal components
  (``sum_{i<=10} s_i^2 / sum_i s_i^2``).

The 2-D map: a seeded sample of items (the same items for both modalities), each modality
L2-normalised and zero-padded to the larger dimension (padding keeps every row's norm and every
within-modality cosine exactly), then one UMAP (cosine metric, fixed ``random_state``, ``n_jobs=1``)
on the union of text and image points. Within-modality structure is faithful; the relative
placement of the two clouds only says that they are separate (the coordinates of the two
encoders are unrelated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

STAT_COLUMNS = [
    "modality",
    "encoder",
    "n_items",
    "n_zero_rows",
    "dimension",
    "mean_pairwise_cosine",
    "mean_distance_to_centroid",
    "effective_rank",
    "top10_variance_share",
]
DEFAULT_SAMPLE = 2000
DEFAULT_SEED = 0


def load_features(path: str | Path) -> np.ndarray:
    try:
        x = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read features {path}: {exc}") from None
    if x.ndim != 2:
        raise InputError(f"{path}: expected a 2-D [n_items, d] matrix, got shape {x.shape}")
    return np.asarray(x, dtype=np.float64)


def l2_normalise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows, and a mask of the rows that were non-zero (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    nonzero = norms > 0
    out = np.zeros_like(x)
    out[nonzero] = x[nonzero] / norms[nonzero, None]
    return out, nonzero


def singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values (descending) via the smaller Gram matrix, in float64."""
    x = np.asarray(x, dtype=np.float64)
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    ev = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(ev, 0.0, None))


def effective_rank(s: np.ndarray) -> float:
    """exp of the Shannon entropy of the normalised singular values ``s / sum(s)``."""
    s = np.asarray(s, dtype=np.float64)
    s = s[s > 0]
    if len(s) == 0:
        return math.nan
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def top_share(s: np.ndarray, k: int = 10) -> float:
    var = np.asarray(s, dtype=np.float64) ** 2
    total = var.sum()
    return float(var[:k].sum() / total) if total > 0 else math.nan


def modality_stats(x: np.ndarray) -> tuple[dict, np.ndarray]:
    """Statistics of one modality (rows L2-normalised, zero rows excluded) and its normalised spectrum
    (singular values of the centred matrix divided by the largest, numerical zeros dropped)."""
    unit, nonzero = l2_normalise(x)
    u = unit[nonzero]
    n = len(u)
    if n < 2:
        raise InputError(f"need at least 2 non-zero feature rows, got {n}")
    total = u.sum(axis=0)
    mean_cos = float((total @ total - n) / (n * (n - 1)))
    centred = u - u.mean(axis=0)
    dist = float(np.linalg.norm(centred, axis=1).mean())
    s = singular_values(centred)
    stats = {
        "n_items": int(x.shape[0]),
        "n_zero_rows": int((~nonzero).sum()),
        "dimension": int(x.shape[1]),
        "mean_pairwise_cosine": mean_cos,
        "mean_distance_to_centroid": dist,
        "effective_rank": effective_rank(s),
        "top10_variance_share": top_share(s, 10),
    }
    spectrum = s / s[0] if s[0] > 0 else s
    # centring removes one direction (rank <= n - 1); values at round-off level are numerical zeros
    return stats, spectrum[spectrum > 1e-6]


def sample_items(valid: np.ndarray, size: int = DEFAULT_SAMPLE, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Sorted indices of up to ``size`` items among those with ``valid`` True, drawn with ``seed``."""
    idx = np.flatnonzero(valid)
    if len(idx) > size:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=size, replace=False))
    return idx


def joint_map(
    text: np.ndarray, image: np.ndarray, items: np.ndarray, seed: int = DEFAULT_SEED, n_neighbors: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """UMAP coordinates of the sampled items' text and image rows (normalised, zero-padded to one
    dimension); returns (coords [2 * len(items), 2], modality labels)."""
    import warnings

    t, _ = l2_normalise(text[items])
    v, _ = l2_normalise(image[items])
    d = max(t.shape[1], v.shape[1])
    pad = lambda a: np.hstack([a, np.zeros((a.shape[0], d - a.shape[1]))]) if a.shape[1] < d else a  # noqa: E731
    data = np.vstack([pad(t), pad(v)]).astype(np.float32)
    labels = np.array(["text"] * len(items) + ["image"] * len(items))
    if len(data) < 4:
        return np.zeros((len(data), 2)), labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=min(n_neighbors, len(data) - 1),
            min_dist=0.1,
            metric="cosine",
            random_state=seed,
            n_jobs=1,
            init="spectral" if len(data) > 10 else "random",
        )
        coords = reducer.fit_transform(data)
    return np.asarray(coords, dtype=np.float64), labels


def embedding_stats(text: np.ndarray, image: np.ndarray, encoders: Mapping[str, str]) -> tuple[pd.DataFrame, dict]:
    """The per-modality statistics table and spectra for the figure."""
    if text.shape[0] != image.shape[0]:
        raise InputError(f"text and image features have different item counts ({text.shape[0]} vs {image.shape[0]})")
    rows, spectra = [], {}
    for modality, x in (("text", text), ("image", image)):
        stats, spectrum = modality_stats(x)
        rows.append({"modality": modality, "encoder": encoders.get(modality, ""), **stats})
        spectra[modality] = spectrum
    return pd.DataFrame(rows, columns=STAT_COLUMNS), spectra


def write_stats(df: pd.DataFrame, path: str | Path) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")


def build(
    *,
    text: str | Path,
    image: str | Path,
    encoders: Mapping[str, str],
    title: str,
    sample: int,
    seed: int,
    table: str | Path,
    figure: str | Path,
) -> pd.DataFrame:
    """Workflow step: Fig. 3 and its statistics table from two feature files."""
    from . import plots

    text, image = load_features(text), load_features(image)
    stats, spectra = embedding_stats(text, image, encoders)
    write_stats(stats, table)
    _, t_ok = l2_normalise(text)
    _, v_ok = l2_normalise(image)
    items = sample_items(t_ok & v_ok, sample, seed)
    coords, labels = joint_map(text, image, items, seed)
    plots.fig3_embeddings(coords, labels, spectra, stats, title, figure)
    return stats
