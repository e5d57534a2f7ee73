"""DA-MRS: denoised item-item graphs, a co-interaction graph and KL alignment over LightGCN."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.dataset import SplitData
from ..errors import InputError
from .base import Features, Recommender
from .blocks import id_tables
from .graph import (
    GraphOperator,
    cosine_normalize,
    lightgcn_propagate,
    neighbour_graph_adjacency,
    normalized_adjacency,
    sparse_from_edges,
    stable_topk,
    sym_normalize,
)
from .ops import RowExpSum
from .params import HyperParams, hp

#: pseudo-positive neighbours per item in the neighbour-discrimination loss (fixed in DA-MRS)
N_PSEUDO = 10
#: InfoNCE temperature of the neighbour-discrimination loss (fixed in DA-MRS)
TEMPERATURE = 0.2
#: entries within this distance of the matrix mean count as "not below the mean" (float round-off)
MEAN_TOL = 1e-6
#: batch items per block of the B x n similarity matrices of the neighbour loss (small temporaries
#: are reused by the allocator; whole B x n matrices would be freshly mapped in every batch)
ROW_BLOCK = 256


@dataclass(frozen=True, kw_only=True)
class DAMRSParams(HyperParams):
    """DAMRS's hyper-parameters (config/models/DAMRS.yaml)."""

    knn_k: int = hp(doc="neighbours per item in the denoised modal graphs", ge=1)
    n_mm_layers: int = hp(doc="propagations on the item-item graphs", ge=0)
    n_ui_layers: int = hp(doc="LightGCN layers on the user-item graph", ge=0)
    neighbor_weight: float = hp(doc="weight of the neighbour-discrimination loss", ge=0)
    kl_weight: float = hp(doc="weight of the KL alignment loss", ge=0)


def denoised_knn_indices(
    text: torch.Tensor, image: torch.Tensor, k: int, chunk_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-modally denoised top-k neighbours (DA-MRS, sec. 3.2), computed in row chunks.

    ``S^t, S^v`` are the cosine matrices; an entry is zeroed in BOTH matrices when it is below the
    mean of either matrix. Item ``i`` keeps ``c_i = min(k, nnz(S^t_i))`` neighbours per modality
    (its top ``c_i`` columns after masking, ties to the lower index). The means are exact matrix
    means, ``||sum_i x_i||^2 / n^2`` of the unit rows, so no dense n x n matrix is ever stored.

    Returns ``(rows, text_cols, image_cols)``: the edge lists of the two unit-weight graphs.
    """
    xt, xv = cosine_normalize(text.float()), cosine_normalize(image.float())
    n = xt.shape[0]
    mean_t = xt.double().sum(0).pow(2).sum() / (n * n)
    mean_v = xv.double().sum(0).pow(2).sum() / (n * n)
    k = min(k, n)
    rows, t_cols, v_cols = [], [], []
    for start in range(0, n, chunk_size):
        st, sv = xt[start : start + chunk_size] @ xt.T, xv[start : start + chunk_size] @ xv.T
        below = (st.double() < mean_t - MEAN_TOL) | (sv.double() < mean_v - MEAN_TOL)
        st, sv = st.masked_fill(below, 0.0), sv.masked_fill(below, 0.0)
        count = (st != 0).sum(1).clamp_max(k)
        t_top, v_top = stable_topk(st, k)[0], stable_topk(sv, k)[0]
        keep = torch.arange(k, device=st.device).unsqueeze(0) < count.unsqueeze(1)
        r = torch.arange(start, start + st.shape[0], device=st.device).unsqueeze(1).expand(-1, k)
        rows.append(r[keep])
        t_cols.append(t_top[keep])
        v_cols.append(v_top[keep])
    return torch.cat(rows), torch.cat(t_cols), torch.cat(v_cols)


def symmetric_binary_kl(logit_p: torch.Tensor, logit_q: torch.Tensor) -> torch.Tensor:
    """Element-wise KL(Bern(p) || Bern(q)) + KL(Bern(q) || Bern(p)), p = sigmoid(logit_p), q = sigmoid(logit_q).

    DA-MRS writes both KLs out (``p log p - p log q + (1-p) log(1-p) - ...``); their sum is exactly
    ``(p - q) * (logit(p) - logit(q))``, which needs no logarithm (so no ``log 0`` either).
    """
    return (torch.sigmoid(logit_p) - torch.sigmoid(logit_q)) * (logit_p - logit_q)


def row_topk_indices(x: torch.Tensor, k: int, groups: int = 10) -> torch.Tensor:
    """Column indices of the k largest entries of every row: a valid ``torch.topk(x, k).indices``.

    Prefilter: with ``m = n // groups``, group c holds columns ``c, c + m, ..., c + (groups-1) m``;
    the k groups with the largest maxima hold the top-k values (were a top-k entry outside them,
    their k maxima would all be at least as large), so the exact top-k runs only on those
    ``k * groups`` candidates plus the ``< groups`` tail columns. Among tied values the chosen
    indices may differ from ``torch.topk``'s (which are unspecified too).
    """
    n = x.shape[1]
    m = n // groups
    if m <= k or x.stride(1) != 1:
        return torch.topk(x, k, dim=1).indices
    slices = x.as_strided((x.shape[0], groups, m), (x.stride(0), m, 1))  # [b, j, c] = x[b, c + j m]
    top_groups = torch.topk(slices.amax(1), k, dim=1).indices
    offsets = torch.arange(0, groups * m, m, device=x.device)
    tail = torch.arange(groups * m, n, device=x.device).expand(x.shape[0], -1)
    cand = torch.cat([(top_groups.unsqueeze(2) + offsets).flatten(1), tail], dim=1)
    return cand.gather(1, torch.topk(x.gather(1, cand), k, dim=1).indices)


class DAMRS(Recommender):
    r"""DA-MRS (Xv et al., "Improving Multi-modal Recommender Systems by Denoising and Aligning
    Multi-modal Content and User Feedback", KDD 2024, https://doi.org/10.1145/3637528.3671703),
    as in the MMRec toolbox's ``damrs.py``.

    * Item-item graphs (built once from the FROZEN raw features): cosine matrices
      :math:`S^t, S^v`; entries below the mean of either matrix are zeroed in both; item
      :math:`i` keeps its top :math:`c_i=\min(k, \mathrm{nnz}(S^t_i))` columns in each modality
      (``knn_k`` = 10); unit weights, :math:`D^{-1/2} A D^{-1/2}` with :math:`D` the row sums.
      Third graph :math:`S^s` = the co-interaction item graph (``data.item_graph``: top-2 items
      with >= 2 common training users) plus self-loops, unit weights, same normalisation.
    * :math:`h^m = (S^m)^{L} e^{id}` for :math:`m \in \{t, v, s\}` (``n_mm_layers`` = L);
      LightGCN (``n_ui_layers``) gives :math:`u, i^{cf}`; item representation
      :math:`i = i^{cf} + (h^t + h^v + h^s)/3`; score :math:`u^\top i`.
    * Loss = weighted BPR + ``neighbor_weight`` * ND + ``kl_weight`` * KL:

      - weighted BPR: :math:`-\overline{w^+ \log\sigma(s^+ - s^-) + w^- \log\sigma(s^- - s^+)}`
        with (detached) :math:`w^+ = \mathrm{clip}(\bar p\, e^{-2\,\mathrm{var}(p)})` over the
        three modal probabilities :math:`p_m = \sigma(u^\top \hat h^m_{pos})` and
        :math:`w^- = \mathrm{clip}(\max_m p_m - \bar n)` where :math:`\bar p < \bar n`
        (:math:`\bar n` = batch mean of the negative modal probabilities), else 0;
      - ND (neighbour discrimination, per view m, averaged over the 3 views): pseudo-positives
        of each batch item = the top-10 of :math:`P^{a} + P^{b} + 2P^{m}` (:math:`P` = row
        softmax of cosine similarities to all items) and the top-10 of :math:`P^{m}` outside
        those; InfoNCE-like :math:`-\log(\sum_{mm} e^{c/\tau} / \sum_{all}) -
        \log(\sum_{single} e^{c/\tau} / (\sum_{all} - \sum_{mm}))`, :math:`\tau = 0.2`;
      - KL: symmetric Bernoulli KL between :math:`\sigma(u^\top \hat i^{cf})` and
        :math:`\sigma(u^\top \widehat{(h^t+h^v+h^s)/3})` over batch users x batch items
        (hats = L2-normalised).

    Args (:class:`DAMRSParams`): ``embedding_size``, ``knn_k``, ``n_mm_layers``, ``n_ui_layers``, ``neighbor_weight``,
    ``kl_weight``.

    Degenerate features (cosine of a zero row is 0 everywhere, see :mod:`.graph`):

    * all-zero text: every text row has 0 non-zeros, so ``c_i = 0`` and BOTH kNN graphs are empty
      (:math:`h^t = h^v = 0`); the model runs on LightGCN plus the co-interaction graph. All-zero
      image (real text): the image matrix is all 0 = its mean, nothing is masked by it, and the
      image graph takes the lowest-index columns (ties), a hub graph.
    * constant (e.g. all-ones) features: every similarity equals the mean, nothing is masked
      (entries within 1e-6 of the mean are kept, absorbing float round-off), all ties, so every
      item links to items ``0..k-1`` in both modalities.
    * No NaN path: zero embeddings in ND give uniform (finite) scores; KL uses log-sigmoids.

    Not reproduced from MMRec: its ``1e-7 + row sum`` normalisation gives an edge INTO an item
    without out-edges a weight of about ``3e3 / sqrt(k)``; here a zero degree gives weight 0. Its
    zero-row cosines are NaN (which makes the mean NaN and the kNN order arbitrary).
    """

    Params = DAMRSParams
    family = "hybrid"
    requires = ("item_graph",)

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        if self.n_items <= 2 * N_PSEUDO:
            raise InputError(f"DAMRS needs more than {2 * N_PSEUDO} items for its pseudo-label loss")

        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)

        text_adj, image_adj = self.build_modal_graphs(features["text"], features["image"], self.hp.knn_k)
        self.text_adj = GraphOperator(text_adj)
        self.image_adj = GraphOperator(image_adj)
        self.session_adj = GraphOperator(self.build_session_graph(data))
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))

    # ----- fixed graphs -------------------------------------------------------------------------
    def build_modal_graphs(self, text: torch.Tensor, image: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, t_cols, v_cols = denoised_knn_indices(text, image, k)
        shape = (self.n_items, self.n_items)
        ones = torch.ones(rows.numel())
        return (
            sym_normalize(sparse_from_edges(rows, t_cols, ones, shape)),
            sym_normalize(sparse_from_edges(rows, v_cols, ones, shape)),
        )

    def build_session_graph(self, data: SplitData) -> torch.Tensor:
        ids = data.item_graph.ids
        if ids.shape[0] != self.n_items or ids.max(initial=-1) >= self.n_items:
            raise InputError("DAMRS: the item graph does not match the dataset's items")
        return sym_normalize(neighbour_graph_adjacency(ids, None, self.n_items, self_loops=True))

    # ----- representations ----------------------------------------------------------------------
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(users, LightGCN items, (h_text, h_image, h_session))."""
        out = lightgcn_propagate(self.adj, torch.cat([self.user_embedding, self.item_embedding]), self.hp.n_ui_layers)
        views = []
        for adj in (self.text_adj, self.image_adj, self.session_adj):
            h = self.item_embedding
            for _ in range(self.hp.n_mm_layers):
                h = adj(h)
            views.append(h)
        return out[: self.n_users], out[self.n_users :], tuple(views)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items, views = self.propagate()
        return users, items + sum(views) / 3.0

    # ----- losses -------------------------------------------------------------------------------
    @staticmethod
    def pseudo_labels(p_a: torch.Tensor, p_b: torch.Tensor, p_own: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-10 of the fused probabilities, and top-10 of the own view outside those.

        ``p_own`` is modified in place for the second top-k and restored afterwards (no B x n
        copy): the result is that of ``topk(p_own.scatter(1, mm_pos, 0))``.
        """
        fused = p_a + p_b
        fused.add_(p_own, alpha=2)  # == p_a + p_b + 2 * p_own bit for bit (2x is exact)
        mm_pos = row_topk_indices(fused, N_PSEUDO)
        kept = p_own.gather(1, mm_pos)
        single_pos = row_topk_indices(p_own.scatter_(1, mm_pos, 0.0), N_PSEUDO)
        p_own.scatter_(1, mm_pos, kept)
        return mm_pos, single_pos

    @staticmethod
    def neighbour_discrimination(
        mm_pos: torch.Tensor,
        single_pos: torch.Tensor,
        z: torch.Tensor,
        z_all: torch.Tensor,
        exp_blocks: list[torch.Tensor],
    ) -> torch.Tensor:
        """InfoNCE-like loss of one view; ``z, z_all`` are the L2-normalised batch / all item
        embeddings, ``exp_blocks`` the row blocks of ``exp(z @ z_all.T / TEMPERATURE)`` (detached,
        the gradient of their row sums is analytic)."""
        mm = torch.exp((z.unsqueeze(1) * z_all[mm_pos]).sum(2) / TEMPERATURE).sum(1)
        single = torch.exp((z.unsqueeze(1) * z_all[single_pos]).sum(2) / TEMPERATURE).sum(1)
        total = RowExpSum.apply(z, z_all, exp_blocks, TEMPERATURE)
        return (-torch.log(mm / total + 1e-9) - torch.log(single / (total - mm) + 1e-9)).mean()

    @classmethod
    @torch.no_grad()
    def similarity_blocks(
        cls, z: list[torch.Tensor], z_all: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]]]:
        """Per view: pseudo-labels of the batch items and ``exp(cos / TEMPERATURE)`` in blocks.

        Works on ``ROW_BLOCK`` batch items at a time, so the B x n temporaries stay small; one
        cosine block per view serves both its row softmax (pseudo-labels, indices only) and,
        overwritten in place, the exponentiated similarities of the loss.
        """
        mm_pos: list[list[torch.Tensor]] = [[], [], []]
        single_pos: list[list[torch.Tensor]] = [[], [], []]
        exp_blocks: list[list[torch.Tensor]] = [[], [], []]
        z_all_t = [za.T.contiguous() for za in z_all]  # row-major right operand: faster products
        for start in range(0, z[0].shape[0], ROW_BLOCK):
            cos = [zb[start : start + ROW_BLOCK] @ zt for zb, zt in zip(z, z_all_t, strict=True)]
            probs = [torch.softmax(c, dim=1) for c in cos]
            for own in range(3):
                a, b = (m for m in range(3) if m != own)
                mm, single = cls.pseudo_labels(probs[a], probs[b], probs[own])
                mm_pos[own].append(mm)
                single_pos[own].append(single)
                exp_blocks[own].append(cos[own].div_(TEMPERATURE).exp_())
        return [torch.cat(x) for x in mm_pos], [torch.cat(x) for x in single_pos], exp_blocks

    def neighbour_loss(self, items: torch.Tensor, views: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean over the three views of the neighbour-discrimination loss of the batch items."""
        z_all = [F.normalize(h, dim=1) for h in views]
        z = [za[items] for za in z_all]
        mm_pos, single_pos, exp_blocks = self.similarity_blocks(z, z_all)
        total = 0.0
        for own in range(3):
            total = total + self.neighbour_discrimination(
                mm_pos[own], single_pos[own], z[own], z_all[own], exp_blocks[own]
            )
        return total / 3.0

    def kl_loss(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        user_emb: torch.Tensor,
        item_cf: torch.Tensor,
        views: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        u = user_emb[users]
        logit_g = u @ F.normalize(item_cf[items], dim=-1).T
        logit_m = u @ F.normalize((sum(views) / 3.0)[items], dim=-1).T
        return symmetric_binary_kl(logit_g, logit_m).mean()

    @staticmethod
    def sample_weights(
        u: torch.Tensor, views: tuple[torch.Tensor, ...], pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached confidence weights of the positive and negative BPR terms."""
        with torch.no_grad():
            p = torch.sigmoid(torch.stack([(u * F.normalize(h[pos], dim=-1)).sum(1) for h in views]))
            n = torch.sigmoid(torch.stack([(u * F.normalize(h[neg], dim=-1)).sum(1) for h in views]))
            p_mean, n_mean = p.mean(0), n.mean()
            w_pos = (p_mean * torch.exp(-p.var(0)).pow(2)).clamp(0, 1)
            w_neg = ((p.max(0).values - n_mean) * (p_mean < n_mean).float()).clamp(0, 1)
        return w_pos, w_neg

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_emb, item_cf, views = self.propagate()
        batch_users = torch.unique(users)
        batch_items = torch.unique(torch.cat([pos, neg]))

        nd = self.neighbour_loss(batch_items, views)
        kl = self.kl_loss(batch_users, batch_items, user_emb, item_cf, views)

        u = user_emb[users]
        w_pos, w_neg = self.sample_weights(u, views, pos, neg)
        items = item_cf + sum(views) / 3.0
        diff = (u * items[pos]).sum(1) - (u * items[neg]).sum(1)
        bpr = -(F.logsigmoid(diff) * w_pos + F.logsigmoid(-diff) * w_neg).mean()
        return bpr + self.hp.neighbor_weight * nd + self.hp.kl_weight * kl
