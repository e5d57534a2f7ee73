"""SMORE: spectral (FFT) denoising and fusion of modality features, three item-item views."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.dataset import SplitData
from .base import Features
from .blocks import FeatureTables, SideContentRecommender, gate, id_tables, take_rows
from .graph import (
    GraphOperator,
    bipartite_blocks,
    knn_graph,
    lightgcn_propagate,
    normalized_adjacency,
    sparse_from_edges,
)
from .params import HyperParams, hp


@dataclass(frozen=True, kw_only=True)
class SMOREParams(HyperParams):
    """SMORE's hyper-parameters (config/models/SMORE.yaml)."""

    image_knn_k: int = hp(doc="neighbours per item in the image kNN graph", ge=1)
    text_knn_k: int = hp(doc="neighbours per item in the text kNN graph", ge=1)
    n_layers: int = hp(doc="propagations on the item-item graphs", ge=0)
    n_ui_layers: int = hp(doc="LightGCN layers of the content view", ge=0)
    reg_weight: float = hp(doc="weight of the L2 penalty on the batch embeddings", ge=0)
    cl_loss: float = hp(doc="weight of the side/content InfoNCE", ge=0)
    dropout_rate: float = hp(doc="dropout of the preference gates (training only)", ge=0, lt=1)


def max_fusion(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise max of two sparse graphs over the union of their edges.

    An edge present in only one graph keeps its value (a missing entry counts as absent, not as
    0), as in MMRec's ``max_pool_fusion``.
    """
    a, b = a.coalesce(), b.coalesce()
    n = a.shape[1]
    idx = torch.cat([a.indices(), b.indices()], dim=1)
    vals = torch.cat([a.values(), b.values()])
    keys, inverse = torch.unique(idx[0] * n + idx[1], return_inverse=True)
    out = torch.full((keys.numel(),), float("-inf"), dtype=vals.dtype).scatter_reduce(0, inverse, vals, reduce="amax")
    return sparse_from_edges(keys // n, keys % n, out, tuple(a.shape))


class SMORE(SideContentRecommender):
    r"""SMORE (Ong & Khong, WSDM 2025, https://arxiv.org/abs/2412.14978), as in MMRec/the SMORE repo.

    * Fixed graphs: :math:`S^v` and :math:`S^t` = top-``image_knn_k`` / ``text_knn_k`` cosine kNN
      of the raw features, similarities as weights, symmetrically normalised (sparse, built once
      from the features this run got); fusion graph :math:`S^f = \max(S^v, S^t)` element-wise over
      the union of edges.
    * Projections :math:`x^m = W_m f^m + b_m` (trainable feature tables). Spectral filters along
      the embedding dimension with ``rfft``/``irfft`` (``norm="ortho"``) and learned complex
      weights :math:`c_v, c_t, c_f \in \mathbb{C}^{d/2+1}` (initialised N(0,1) per real/imag part):
      :math:`\hat x^v = \mathcal F^{-1}(\mathcal F x^v \cdot c_v)`,
      :math:`\hat x^t = \mathcal F^{-1}(\mathcal F x^t \cdot c_t)`,
      :math:`\hat x^f = \mathcal F^{-1}(\mathcal F x^v \cdot \mathcal F x^t \cdot c_f)`.
    * Gated item embeddings :math:`\dot e^m = e^{id} \odot \sigma(W^g_m \hat x^m + b^g_m)`,
      m in {v, t, f}; item-item views :math:`\bar e^m_I = (S^m)^{L}\dot e^m` (``n_layers``), users
      :math:`\hat R \bar e^m_I` with :math:`\hat R = D_u^{-1/2}RD_i^{-1/2}`.
    * Modality-aware preference: :math:`a^v = \mathrm{softmax}_{dim}(q_v(\bar e^f)) \odot \bar e^v`,
      :math:`a^t = \mathrm{softmax}_{dim}(q_t(\bar e^f)) \odot \bar e^t` with
      :math:`q(x) = W_2\tanh(W_1x+b_1)` (softmax over the embedding dimension, as in the code);
      preference gates :math:`p^m = \mathrm{dropout}(\sigma(W^p_m e^{ui} + b^p_m))` (``dropout_rate``,
      training only); side :math:`e^s = \mathrm{mean}(p^v a^v, p^t a^t, p^f \bar e^f)`.
    * Content view :math:`e^{ui}`: LightGCN (``n_ui_layers``) on :math:`D^{-1/2}AD^{-1/2}`;
      final :math:`e = e^{ui} + e^s`.
    * Loss: BPR + ``reg_weight`` * (1/2)(||u||^2+||i||^2+||j||^2)/batch + ``cl_loss`` *
      [InfoNCE(:math:`e^s_{pos}, e^{ui}_{pos}`) + InfoNCE(:math:`e^s_u, e^{ui}_u`)], temperature
      hard-coded 0.2 (the yaml's ``temperature`` is unused, as in MMRec).

    Degenerate features (defined here; MMRec divides 0 by 0, so all-zero features give NaN and
    metrics of 0.0000): an all-zero row has cosine 0 with every item, so all-zero features give
    all-zero image, text and fusion graphs (zero degrees map to zero weights); the item-item
    views, and hence the side embedding, are then zero, leaving LightGCN plus a finite InfoNCE
    term (normalisation has an eps). Constant rows tie every similarity and ties go to the lower
    item index (every item links to items ``0..k-1``).

    Args (:class:`SMOREParams`): ``embedding_size``, ``image_knn_k``, ``text_knn_k``,
    ``n_layers``, ``n_ui_layers``, ``reg_weight``, ``cl_loss``, ``dropout_rate``.
    """

    Params = SMOREParams
    family = "item-item graph"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.dropout = nn.Dropout(p=self.hp.dropout_rate)
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        self.content = FeatureTables(features, ("image", "text"), d)
        self.query_image = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d, bias=False))
        self.query_text = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, d, bias=False))
        self.gate_image, self.gate_text, self.gate_fusion = gate(d), gate(d), gate(d)
        self.gate_image_prefer, self.gate_text_prefer, self.gate_fusion_prefer = gate(d), gate(d), gate(d)
        self.image_filter = nn.Parameter(torch.randn(1, d // 2 + 1, 2))
        self.text_filter = nn.Parameter(torch.randn(1, d // 2 + 1, 2))
        self.fusion_filter = nn.Parameter(torch.randn(1, d // 2 + 1, 2))

        image_adj = knn_graph(features["image"], self.hp.image_knn_k, weighted=True)
        text_adj = knn_graph(features["text"], self.hp.text_knn_k, weighted=True)
        self.image_adj = GraphOperator(image_adj)
        self.text_adj = GraphOperator(text_adj)
        self.fusion_adj = GraphOperator(max_fusion(image_adj, text_adj))
        adj = normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items)
        self.adj = GraphOperator(adj)
        self.R = GraphOperator(bipartite_blocks(adj, self.n_users)[0])

    def spectrum_convolution(
        self, image: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uni-modal filters and the cross-modal product filter in the frequency domain."""
        d = image.shape[1]
        image_fft = torch.fft.rfft(image, dim=1, norm="ortho")
        text_fft = torch.fft.rfft(text, dim=1, norm="ortho")
        image_conv = torch.fft.irfft(image_fft * torch.view_as_complex(self.image_filter), n=d, dim=1, norm="ortho")
        text_conv = torch.fft.irfft(text_fft * torch.view_as_complex(self.text_filter), n=d, dim=1, norm="ortho")
        fusion_conv = torch.fft.irfft(
            image_fft * text_fft * torch.view_as_complex(self.fusion_filter), n=d, dim=1, norm="ortho"
        )
        return image_conv, text_conv, fusion_conv

    def dropout_rows(self, x: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """``self.dropout`` of the full (U+I) x d table, restricted to ``rows`` (``x`` holds those rows).

        The mask is drawn by ``self.dropout`` for every node, so a batch restricted to its own nodes
        consumes the same random numbers and gets the same mask as the full-table computation.
        """
        if rows is None or not self.training or self.dropout.p == 0:
            return self.dropout(x)
        mask = self.dropout(torch.ones(self.n_users + self.n_items, x.shape[1], dtype=x.dtype, device=x.device))
        return x * mask.index_select(0, rows)

    def fuse(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        fusion: torch.Tensor,
        content: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fusion-guided attention on the uni-modal views, preference gates, mean: the side embedding."""
        agg_image = torch.softmax(self.query_image(fusion), dim=-1) * image
        agg_text = torch.softmax(self.query_text(fusion), dim=-1) * text
        p_image = self.dropout_rows(self.gate_image_prefer(content), rows)
        p_text = self.dropout_rows(self.gate_text_prefer(content), rows)
        p_fusion = self.dropout_rows(self.gate_fusion_prefer(content), rows)
        return torch.stack([p_image * agg_image, p_text * agg_text, p_fusion * fusion]).mean(dim=0)

    def propagate(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(side, content) embeddings of the nodes ``rows`` (users then items; all when None)."""
        conv_v, conv_t, conv_f = self.spectrum_convolution(self.content("image"), self.content("text"))
        e = self.item_embedding
        content = lightgcn_propagate(self.adj, torch.cat([self.user_embedding, e]), self.hp.n_ui_layers)
        image = self.item_item_view(e * self.gate_image(conv_v), self.image_adj)
        text = self.item_item_view(e * self.gate_text(conv_t), self.text_adj)
        fusion = self.item_item_view(e * self.gate_fusion(conv_f), self.fusion_adj)
        image, text, fusion, content = take_rows(rows, image, text, fusion, content)
        return self.fuse(image, text, fusion, content, rows), content
