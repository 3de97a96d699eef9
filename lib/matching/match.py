"""The matcher: candidates from both stages, each transform's support (its mask), its features,
and the decision: the verifier's probability (v2) or v1's cascade of cut-offs."""
from __future__ import annotations

import cv2
import numpy as np

from .config import Event, MatchConfig, MatchResult, to_gray
from .dense import dense_field, local_std, rigid_pairs
from .features import candidate_measures, cascade_reason, feature_vector
from .fine import fine_clusters
from .keypoints import g2nn_pairs, keypoints, mirror_sources, unmirror
from .panels import panel_labels, split_panels, text_mask
from .regions import fine_detail, isotropic, support
from .transforms import Cluster, fit_transforms
from .verifier import Verifier, default_verifier


def _candidates(gray: np.ndarray, config: MatchConfig, result: MatchResult) -> list[tuple[str, Cluster]]:
    """(stage, cluster) of every transform the enabled detectors support."""
    found = []
    w = gray.shape[1]
    if config.keypoints:
        points, desc = keypoints(gray, config)
        result.keypoints = points
        for mirrored in ((False, True) if config.mirror else (False,)):
            pairs = g2nn_pairs(points, desc, mirrored, config)
            result.n_pairs["keypoints" + (" mirrored" if mirrored else "")] = len(pairs)
            fit_pairs = mirror_sources(pairs, w) if mirrored else pairs
            for cluster in fit_transforms(fit_pairs, "keypoints", config, result.rejected):
                if mirrored:
                    cluster.matrix, cluster.inliers = unmirror(cluster.matrix, w), mirror_sources(cluster.inliers, w)
                found.append(("keypoints", cluster))
    if config.dense and max(gray.shape) > config.dense_max_side:
        result.rejected.append(("dense", f"skipped: {max(gray.shape)} px > dense_max_side {config.dense_max_side}"))
    elif config.dense:
        result.dense = dense_field(gray, config)
        pairs = rigid_pairs(result.dense, config)
        result.n_pairs["dense"] = len(pairs)
        found += [("dense", cluster) for cluster in fit_transforms(pairs, "dense", config, result.rejected)]
    if config.fine:
        found += [("fine", cluster) for cluster in fine_clusters(gray, config, result.rejected)]
    return found


def match_image(image: np.ndarray, config: MatchConfig = MatchConfig(), verifier: Verifier | None = None
                ) -> MatchResult:
    """Find copy-move duplications in an RGB (or gray) uint8 image: find_candidates, each event
    scored by `verifier` (the default verifier when None) unless config.decision is v1's cascade.
    Events scoring at least result.threshold form result.instances."""
    result = find_candidates(image, config)
    if config.decision == "verifier":
        score_events(result, verifier or default_verifier())
    return result


def score_events(result: MatchResult, verifier: Verifier) -> None:
    """Each event's score: `verifier`'s probability that it is a real copy (in place)."""
    result.threshold = verifier.threshold
    if result.events:
        probabilities = verifier.probabilities(np.stack([e.features for e in result.events]))
        for event, probability in zip(result.events, probabilities):
            event.score = float(probability)


def find_candidates(image: np.ndarray, config: MatchConfig = MatchConfig()) -> MatchResult:
    """Every candidate duplication in an RGB (or gray) uint8 image that gets a mask, as an event
    with its features. Under v1's cascade (config.decision) an event's score is its fine-detail
    correlation (0 when a cut-off rejects it); otherwise scores await a verifier (score_events).
    Masks at the image's size."""
    gray = to_gray(image)
    h, w = gray.shape
    scale = min(1.0, config.max_side / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    result = MatchResult(scale=scale)
    boxes = split_panels(gray) if config.panels else []
    panels = panel_labels(gray.shape, boxes) if config.panels else None
    text = text_mask(gray) if config.text else None
    straight = isotropic(gray, config.max_coherence)
    detail, texture = fine_detail(gray), local_std(gray, 7)
    candidates = _candidates(gray, config, result)
    for stage, cluster in candidates:
        found, why = support(gray, detail, straight, cluster.matrix, cluster.inliers, config)
        if found is None:
            result.rejected.append((stage, f"transform with {len(cluster.inliers)} inliers: {why}"))
            continue
        measures = candidate_measures(gray, detail, texture, cluster, stage, found, text, panels, config)
        reason = cascade_reason(measures, config) if config.decision == "cascade" else ""
        if reason:
            result.rejected.append((stage, reason))
        result.events.append(Event(cluster.matrix, stage, cluster.inliers, found.copy | found.source,
                                   feature_vector(measures, len(candidates)), found.detail, reason))
    if config.decision == "cascade":
        result.threshold = config.min_detail_ncc
        for event in result.events:
            event.score = 0.0 if event.reason else event.detail
    if scale < 1.0:
        for event in result.events:
            event.mask = cv2.resize(event.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            event.inliers = event.inliers / scale
            event.matrix = event.matrix.copy()
            event.matrix[:, 2] /= scale
        result.keypoints = result.keypoints / scale
    result.panels = [tuple(int(round(v / scale)) for v in box) for box in boxes]
    return result
