"""Losses shared by the models, defined as in the MMRec toolbox."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: -mean log sigmoid(s_pos - s_neg) (Rendle et al., UAI 2009)."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def emb_norm_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: sum of the Frobenius norms of the batch embeddings over the batch size."""
    batch = embeddings[-1].shape[0]
    return sum(torch.linalg.norm(e) for e in embeddings) / batch


def l2_sq_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """Half the sum of squared entries over the batch size (the usual ``L2`` regulariser)."""
    batch = embeddings[-1].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives on cosines: row i of ``view1`` should match row i of ``view2``."""
    v1, v2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = (v1 / temperature) @ v2.T  # the temperature on the d-wide input, not the n x n logits
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def counted_info_nce(
    view1: torch.Tensor,
    view2: torch.Tensor,
    target: torch.Tensor,
    counts: torch.Tensor,
    temperature: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""In-batch InfoNCE on dot products, with the batch's repeated columns stored once.

    ``view2`` holds the distinct columns and ``counts`` how often each occurs in the batch, so the
    normaliser :math:`\log\sum_j e^{s_{rj}}` over batch columns is :math:`\log\sum_k c_k e^{s_{rk}}`.
    Row ``r`` matches column ``target[r]``; ``weights`` (default 1) count a row standing for several
    identical batch rows. Equal to the plain in-batch InfoNCE on the expanded batch.
    """
    log_counts = counts.log()
    # cross-entropy against logits + log c_k is lse - s_rt - log c_t; the constant log c_t is added back
    logits = (view1 / temperature) @ view2.T + log_counts
    per_row = F.cross_entropy(logits, target, reduction="none") + log_counts[target]
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum()


def info_nce_distinct(
    view1: torch.Tensor, view2: torch.Tensor, index: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``info_nce(view1[index], view2[index], temperature)``, computed on the distinct rows only.

    A row repeated c times in the batch gives c identical logit rows and c identical negatives, so
    the loss is :func:`counted_info_nce` of the k distinct rows with their counts: the same value up
    to float rounding, on a k x k instead of an n x n logit matrix.
    """
    distinct, counts = torch.unique(index, return_counts=True)
    v1 = F.normalize(view1.index_select(0, distinct), dim=1)
    v2 = F.normalize(view2.index_select(0, distinct), dim=1)
    counts = counts.to(v1.dtype)
    return counted_info_nce(v1, v2, torch.arange(distinct.numel(), device=index.device), counts, temperature, counts)
