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
    """InfoNCE with in-batch negatives: row i of ``view1`` should match row i of ``view2``."""
    v1, v2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = v1 @ v2.T / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()
