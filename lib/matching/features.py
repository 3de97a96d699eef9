"""A candidate event's feature vector: everything the verifier weighs at once. The names and
their order are the feature schema; its hash is stored with a verifier and checked at load,
so a verifier is never applied to features it was not trained on."""
from __future__ import annotations

import hashlib

import numpy as np

from .config import MatchConfig
from .content import self_similarity, strokes, two_tone_fraction
from .regions import Support
from .transforms import Cluster

FEATURES = (
    "dense",                 # proposed by the dense stage (0: keypoints or fine)
    "fine",                  # proposed by the fine stage (small copies)
    "inliers",               # log2 of the inlier count
    "inlier_ratio",          # inliers / pairs left when the transform was fitted
    "spread",                # log2 of the inliers' spread across their main direction (pixels)
    "scale",                 # |log2 of the transform's scale|
    "rotation",              # degrees rotated, 0..180
    "off_axis",              # degrees from the nearest multiple of 90
    "anisotropy",            # singular value ratio of the linear part
    "mirrored",
    "shift",                 # median distance moved / image diagonal
    "area",                  # copy area / image area
    "compactness",           # copy area / its bounding box's area
    "ncc",                   # median local NCC of the content over the copy
    "detail",                # median NCC of the fine detail away from edges (-1: nothing to judge)
    "detail_q25",
    "detail_q75",
    "informative",           # fraction of the copy where the fine detail is judged
    "flat",                  # fraction of the copy agreeing by intensity only
    "difference",            # mean |copy - moved source| (gray levels)
    "texture_copy",          # median local std over the copy
    "texture_source",
    "self_similarity",       # periodicity: autocorrelation of the copy's detail off its centre
    "overlap",               # source and copy sharing pixels, of the smaller
    "two_tone",              # pixels near the two commonest gray levels
    "paper",                 # fraction at the paper level
    "thin",                  # fraction of the ink in thin strokes
    "text",                  # fraction of the ink (not paper) marked as text, letters or scale bars
    "same_panel",            # 1: source and copy in one panel; 0: in two; -1: not inside panels
    "panel_cover",           # copy area / the area of the panel it lies in
    "candidates",            # log2(1 + candidate transforms in the figure)
)


FEATURES_VERSION = 3      # bump when a feature's meaning changes under the same name (2: text = share of the ink;
#                           3: dense is 0 for the fine stage's candidates)


def schema_hash() -> str:
    """A short hash of the feature names, their order and FEATURES_VERSION."""
    return hashlib.sha256(f"{','.join(FEATURES)}/{FEATURES_VERSION}".encode()).hexdigest()[:12]


def _panel_relation(labels: np.ndarray | None, copy: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    if labels is None:
        return -1.0, 0.0

    def panel(region):
        values = labels[region]
        values = values[values > 0]
        return int(np.bincount(values).argmax()) if len(values) * 2 > region.sum() else 0

    a, b = panel(copy), panel(source)
    if not a or not b:
        return -1.0, 0.0
    return float(a == b), float(copy.sum()) / float((labels == a).sum())


def candidate_measures(gray: np.ndarray, detail: np.ndarray, local_std: np.ndarray, cluster: Cluster,
                       stage: str, found: Support, text: np.ndarray | None, panels: np.ndarray | None,
                       config: MatchConfig) -> dict[str, float]:
    """The FEATURES of one candidate except `candidates` (a property of the whole figure)."""
    linear = cluster.matrix[:, :2]
    mirrored = np.linalg.det(linear) < 0
    if mirrored:
        linear = linear @ np.diag([-1.0, 1.0])
    rotation = abs(float(np.degrees(np.arctan2(linear[1, 0], linear[0, 0]))))
    copy, source = found.copy, found.source
    area = float(copy.sum())
    ys, xs = np.nonzero(copy)
    box = float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    both = copy | source
    paper, thin, ink = strokes(gray, both, config.max_stroke)
    same_panel, cover = _panel_relation(panels, copy, source)
    return dict(
        dense=float(stage == "dense"), fine=float(stage == "fine"), inliers=float(np.log2(len(cluster.inliers))),
        inlier_ratio=len(cluster.inliers) / max(cluster.pool, 1), spread=float(np.log2(1 + cluster.spread)),
        scale=abs(float(np.log2(cluster.scale))), rotation=rotation,
        off_axis=abs(((rotation + 45) % 90) - 45), anisotropy=cluster.anisotropy, mirrored=float(mirrored),
        shift=cluster.shift / float(np.hypot(*gray.shape)), area=area / gray.size, compactness=area / box,
        ncc=found.ncc, detail=found.detail, detail_q25=found.detail_q25, detail_q75=found.detail_q75,
        informative=found.informative, flat=found.flat, difference=found.difference,
        texture_copy=float(np.median(local_std[copy])), texture_source=float(np.median(local_std[source]))
        if source.any() else 0.0,
        self_similarity=self_similarity(detail, copy)[0],
        overlap=float((copy & source).sum()) / max(min(area, float(source.sum())), 1.0),
        two_tone=two_tone_fraction(gray[both]), paper=paper, thin=thin,
        text=float(text[ink].mean()) if text is not None and ink.any() else 0.0,
        same_panel=same_panel, panel_cover=cover)


def feature_vector(measures: dict[str, float], candidates: int) -> np.ndarray:
    return np.array([measures[name] for name in FEATURES[:-1]] + [np.log2(1 + candidates)], np.float32)


def cascade_reason(measures: dict[str, float], config: MatchConfig) -> str:
    """Why v1's cascade rejects a candidate that got a mask ("" when it passes): source and copy
    overlapping, periodic texture, two-tone content, thin strokes on paper."""
    if measures["overlap"] > config.max_overlap:
        return f"source and copy overlap {measures['overlap']:.0%}: repeated texture"
    if measures["self_similarity"] > config.max_self_similarity:
        return f"the region repeats within itself ({measures['self_similarity']:.2f}): periodic texture"
    if measures["two_tone"] >= config.max_two_tone:
        return f"two-tone content ({measures['two_tone']:.0%} within two gray levels): text or graphics"
    if measures["paper"] >= 0.5 and measures["thin"] >= 0.8:
        return (f"thin strokes on a flat ground ({measures['thin']:.0%} of the ink under {config.max_stroke:g} px): "
                "text or lines")
    return ""
