"""Boundary (edge) evaluation as the edge-detection literature scores it: BSDS-style correspondence.

M³ViT scores PASCAL-Context edges with SEISM (VITA-Group/M3ViT evaluation/eval_edge.py
eval_edge_predictions → jponttuset/seism), which calls Piotr Dollár's ``edgesEvalImg``
(seism src/piotr_edges/edgesEvalImg.m), itself a re-implementation of BSDS500's
``evaluation_bdry_image``. Per image and threshold t:

1. the prediction is binarised, ``prob >= t`` (M3ViT evaluation/seism/read_one_png.m), for the 99
   thresholds 0.01, 0.02, …, 0.99 (eval_edge.py writes ``np.arange(0.01, 1.00, 0.01)``);
2. optionally thinned to 1-pixel lines (``bwmorph(E, 'thin', inf)``; edgesEvalImg's ``thin`` option,
   on by default there, off in one SEISM version of eval_cont.m: :data:`THIN_PREDICTIONS`);
3. predicted and true boundary pixels are put in one-to-one correspondence, a pair allowed when
   the two are at most ``max_dist`` × the image diagonal apart (maxDist 0.0075, edgesEvalImg's
   default, used for PASCAL-Context), and the matched pixels of each side are counted.

Recall = matched true / all true, precision = matched predicted / all predicted, both pooled over
the dataset per threshold; odsF is the best F over thresholds (seism src/scripts/general_ods.m:
the maximum over the parameter grid, no interpolation), oisF pools each image at its own best
threshold (general_ois.m). The ground truth is SEISM's: the PASCAL-Context ``LabelMap`` as a
segmentation (seism src/gt_wrappers/db_gt.m, 'PASCALContext'), turned into 1-pixel boundaries by
BSDS's ``seg2bmap`` inside edgesEvalImg (:func:`seg2bmap`). ASTMT's thinned |Laplacian| of the same
map (M3ViT data/pascal_context.py _load_edge, :func:`laplacian_edges`) is the *training* target
and the edge loss M³ViT's EdgeMeter reports during training, not what SEISM scores against.

The correspondence is ours: BSDS's correspondPixels solves a min-cost assignment with an outlier
cost far above any match cost, so the number of pairs it finds is a maximum matching within the
distance; we compute that maximum matching exactly (as a unit-capacity max flow,
``scipy.sparse.csgraph.maximum_flow`` with Dinic's method) and do not minimise the pairs' total
distance, which changes no count. Thinning is Lam, Lee & Suen's two-subiteration algorithm (the one behind
MATLAB's ``bwmorph(…, 'thin', inf)``), our code. numpy + scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow
from scipy.spatial import cKDTree

MAX_DIST = 0.0075  # fraction of the image diagonal (edgesEvalImg's maxDist, BSDS/PASCAL-Context)
THRESHOLDS = np.round(np.arange(1, 100) / 100, 2)  # 0.01 … 0.99, as eval_edge.py's seism parameters
THIN_PREDICTIONS = True  # edgesEvalImg's default ('thin', 1)

# Neighbours x1..x8 of Lam, Lee & Suen (1992): E, NE, N, NW, W, SW, S, SE as (row, col) offsets.
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thin_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two subiterations, indexed by the 8-bit code Σ x_i · 2^(i-1)."""
    lut1, lut2 = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        x = [(code >> i) & 1 for i in range(8)]  # x[0] = x1 … x[7] = x8
        x9 = x + [x[0]]
        # G1: exactly one 0→1 "crossing" of the 4-connected neighbours (the Hilditch crossing number)
        xh = sum(1 for i in range(4) if x9[2 * i] == 0 and (x9[2 * i + 1] or x9[2 * i + 2]))
        # G2: 2 <= min(n1, n2) <= 3 (not an end point, not interior)
        n1 = sum(x9[2 * k] | x9[2 * k + 1] for k in range(4))
        n2 = sum(x9[2 * k + 1] | x9[2 * k + 2] for k in range(4))
        g12 = xh == 1 and 2 <= min(n1, n2) <= 3
        # G3 / G3': (x2 ∨ x3 ∨ ¬x8) ∧ x1 = 0, and its 180° rotation (x6 ∨ x7 ∨ ¬x4) ∧ x5 = 0
        lut1[code] = g12 and not ((x[1] or x[2] or not x[7]) and x[0])
        lut2[code] = g12 and not ((x[5] or x[6] or not x[3]) and x[4])
    return lut1, lut2


_LUT1, _LUT2 = _thin_luts()


def thin(mask: np.ndarray) -> np.ndarray:
    """Thin a binary image to 1-pixel-wide, 8-connected lines (``bwmorph(mask, 'thin', inf)``).

    Pixels outside the image count as 0. Repeats both subiterations until nothing changes.
    """
    m = np.asarray(mask, dtype=bool).copy()
    if m.ndim != 2:
        raise ValueError(f"thin: expected a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    while True:
        changed = False
        for lut in (_LUT1, _LUT2):
            p = np.pad(m, 1)
            code = np.zeros((h, w), dtype=np.uint8)
            for bit, (dr, dc) in enumerate(_NEIGHBOURS):
                code |= p[1 + dr:1 + dr + h, 1 + dc:1 + dc + w].astype(np.uint8) << bit
            delete = m & lut[code]
            if delete.any():
                m &= ~delete
                changed = True
        if not changed:
            return m


def seg2bmap(labels: np.ndarray) -> np.ndarray:
    """BSDS's boundary map of a segmentation (David Martin's ``seg2bmap``, as edgesEvalImg applies it
    to SEISM's ground truth): a pixel is a boundary when its east, south or south-east neighbour
    has another label — boundaries offset half a pixel towards the origin, 1 pixel wide. In the last
    row only the east neighbour counts, in the last column only the south one, and the bottom-right
    pixel is never a boundary."""
    seg = np.asarray(labels).astype(np.int64)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap: expected a 2-D label map, got shape {seg.shape}")
    outside = seg.min() - 1  # seg2bmap pads with 0 after relabelling to 1..k: a label no pixel has
    e, s, se = (np.full_like(seg, outside) for _ in range(3))
    e[:, :-1], s[:-1], se[:-1, :-1] = seg[:, 1:], seg[1:], seg[1:, 1:]
    b = (seg != e) | (seg != s) | (seg != se)
    b[-1, :] = seg[-1, :] != e[-1, :]
    b[:, -1] = seg[:, -1] != s[:, -1]
    b[-1, -1] = False
    return b


def laplacian_edges(labels: np.ndarray) -> np.ndarray:
    """ASTMT's edge *training* target of a label map: ``thin(|Laplacian(labels)| > 0)``.

    The Laplacian is OpenCV's default (3×3 kernel [[0,1,0],[1,-4,1],[0,1,0]], border reflected
    without repeating the edge pixel, BORDER_REFLECT_101), as ``cv2.Laplacian(LabelMap, CV_64F)`` in
    M3ViT data/pascal_context.py _load_edge; both sides of a label change are marked, then thinned.
    """
    a = np.asarray(labels, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"laplacian_edges: expected a 2-D label map, got shape {a.shape}")
    p = np.pad(a, 1, mode="reflect")  # numpy's 'reflect' is OpenCV's BORDER_REFLECT_101
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * a
    return thin(np.abs(lap) > 0)


def correspond(pred: np.ndarray, gt: np.ndarray, max_dist: float = MAX_DIST) -> tuple[np.ndarray, np.ndarray]:
    """Maximum one-to-one matching of predicted to true boundary pixels within max_dist × diagonal.

    Returns boolean maps (matched predicted pixels, matched true pixels), equal in count.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"correspond: prediction {pred.shape} and ground truth {gt.shape} must be the "
                         "same 2-D shape")
    mp, mg = np.zeros_like(pred), np.zeros_like(gt)
    pp, gp = np.argwhere(pred), np.argwhere(gt)
    if not len(pp) or not len(gp):
        return mp, mg
    radius = max_dist * math.hypot(*pred.shape)
    near = cKDTree(pp).query_ball_tree(cKDTree(gp), radius)  # distance <= radius, 0 included
    rows = np.repeat(np.arange(len(pp)), [len(n) for n in near])
    if not len(rows):
        return mp, mg
    cols = np.concatenate([np.asarray(n, dtype=np.int64) for n in near])
    # Maximum matching as a unit-capacity max flow source → pred → true → sink (Dinic, O(E √V)).
    # Not csgraph.maximum_bipartite_matching: its Hopcroft–Karp takes exponential time on layered
    # graphs such as pixels along a line (scipy issue 26147).
    n_p, n_g = len(pp), len(gp)
    s_, t_ = n_p + n_g, n_p + n_g + 1
    src = np.concatenate([np.full(n_p, s_), rows, n_p + np.arange(n_g)])
    dst = np.concatenate([np.arange(n_p), n_p + cols, np.full(n_g, t_)])
    graph = csr_matrix((np.ones(len(src), dtype=np.int32), (src, dst)), shape=(n_p + n_g + 2,) * 2)
    flow = maximum_flow(graph, s_, t_, method="dinic").flow.tocoo()
    used = (flow.data > 0) & (flow.row < n_p) & (flow.col >= n_p) & (flow.col < s_)
    mp[tuple(pp[flow.row[used]].T)] = True
    mg[tuple(gp[flow.col[used] - n_p].T)] = True
    return mp, mg


def image_counts(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray = THRESHOLDS,
                 max_dist: float = MAX_DIST, thin_pred: bool = THIN_PREDICTIONS) -> np.ndarray:
    """(4, K) counts of one image per threshold: matched true, all true, matched pred, all pred."""
    prob, gt = np.asarray(prob, dtype=np.float64), np.asarray(gt, dtype=bool)
    if prob.shape != gt.shape:
        raise ValueError(f"edge prediction {prob.shape} and ground truth {gt.shape} differ in size; "
                         "resize the prediction to the label's size first")
    out = np.zeros((4, len(thresholds)), dtype=np.int64)
    for k, t in enumerate(thresholds):
        e = prob >= max(t, np.finfo(float).eps)  # edgesEvalImg: E >= max(eps, thr)
        if thin_pred:
            e = thin(e)
        mp, mg = correspond(e, gt, max_dist)
        out[:, k] = (mg.sum(), gt.sum(), mp.sum(), e.sum())
    return out


def _prf(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray, sum_p: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, precision, F per threshold, with BSDS's conventions for empty sides (0/0 → 0)."""
    r = np.where(sum_r > 0, cnt_r / np.maximum(sum_r, 1), 0.0)
    p = np.where(sum_p > 0, cnt_p / np.maximum(sum_p, 1), 0.0)
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    return r, p, f


@dataclass
class BoundaryMeter:
    """odsF / oisF (percent) of edge probability maps against thin boundary ground truth."""

    thresholds: np.ndarray = field(default_factory=lambda: THRESHOLDS.copy())
    max_dist: float = MAX_DIST
    thin_pred: bool = THIN_PREDICTIONS
    counts: list[np.ndarray] = field(default_factory=list)  # (4, K) per image

    def update_image(self, prob: np.ndarray, gt: np.ndarray) -> None:
        """One image: probabilities (H, W) in [0, 1] and the boolean boundary map (H, W)."""
        self.counts.append(image_counts(prob, gt, self.thresholds, self.max_dist, self.thin_pred))

    def compute(self) -> dict[str, float]:
        if not self.counts:
            return {"odsF": math.nan, "oisF": math.nan, "ods_threshold": math.nan}
        c = np.stack(self.counts)  # (N, 4, K)
        _, _, f = _prf(*c.sum(0))
        best = int(np.argmax(f))
        per_image = np.array([np.argmax(_prf(*ci)[2]) for ci in c])
        ois = c[np.arange(len(c)), :, per_image].sum(0)  # (4,) each image at its own best threshold
        _, _, f_ois = _prf(*(ois[:, None]))
        return {"odsF": 100 * float(f[best]), "oisF": 100 * float(f_ois[0]),
                "ods_threshold": float(self.thresholds[best])}
