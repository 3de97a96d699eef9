"""The matcher's parameters and results."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

STAGES = ("keypoints", "dense", "fine")
DECISIONS = ("verifier", "cascade")


@dataclass(frozen=True)
class MatchConfig:
    """Parameters of the matcher. The defaults are v3: candidates proposed liberally (keypoints,
    the dense field and the fine stage for small copies) and judged by the learned verifier
    (lib.matching.verifier); `MatchConfig.v2()` is v3 without the fine stage and
    `MatchConfig.cascade()` is v1, the hand-set cascade of cut-offs tuned on the demo figures,
    both kept for comparison."""

    decision: str = "verifier"           # verifier: a learned probability; cascade: v1's cut-offs
    max_side: int = 1024                 # larger images are matched at this size
    # keypoint stage
    keypoints: bool = True
    contrast_threshold: float = 0.02     # SIFT: lower finds more points in low-contrast figures
    upsample_below: int = 0              # images whose longer side is shorter are upsampled 2x
    max_keypoints: int = 8000
    ratio: float = 0.7                   # generalised 2NN ratio test
    knn: int = 4                         # neighbours examined per keypoint (g2NN)
    min_distance: float = 12.0           # pixels between the two ends of a pair
    mirror: bool = True                  # also match mirrored descriptors (flipped copies)
    # transforms
    ransac_threshold: float = 4.0        # pixels
    min_inliers: int = 5
    max_events: int = 8                  # per detector
    # degenerate transforms (v2 drops only these; v1's stricter cut-offs below are features in v2)
    min_shift: float = 8.0               # transforms that barely move anything
    scale_range: tuple[float, float] = (0.25, 4.0)
    min_spread: float = 1.0              # inliers' spread across their main direction (pixels)
    max_anisotropy: float = 2.0          # dense stage fits affine maps: singular value ratio at most
    # masks
    window: int = 7                      # side of the local correlation window
    min_ncc: float = 0.8                 # local NCC of image and warped image above this agrees
    flat_tolerance: float = 6.0          # flat pixels near the inliers agree within this many gray levels
    max_coherence: float = 0.7           # above: an edge or a line, left out of the detail median
    min_texture: float = 3.0             # local std below this is flat (correlation means nothing)
    grow: int = 5                        # dilation (square side) of the agreeing area: border windows
    min_region: int = 24                 # pixels: smaller agreeing regions are dropped
    fill_hull: bool = True               # leniently agreeing pixels in an agreeing region's convex hull join it
    # dense stage
    dense: bool = True
    dense_method: str = "patchmatch"     # patchmatch (every pixel, v2) or kdtree (textured pixels, v1)
    dense_max_side: int = 1024           # larger (working) images skip the dense stage
    dense_max_grid: int = 400            # the grid step grows so that the grid is at most this a side
    dense_radius: int = 6                # patch radius of the Zernike features
    dense_stride: int = 2                # grid step in pixels (at least)
    dense_min_std: float = 1.0           # patches flatter than this (blank paper) take no part
    dense_iterations: int = 4            # PatchMatch iterations
    dense_knn: int = 8                   # kdtree: neighbours examined for the first one far enough
    dense_dims: int = 6                  # principal components of the features searched
    dense_eps: float = 2.0               # kdtree: neighbours within (1 + eps) x the true distance
    dense_reach: int = 2                 # neighbours (grid cells each way) in the consistency check
    dense_tolerance: float = 2.5         # pixels a neighbour's match may miss the rigid distance by
    dense_agree: float = 0.5             # fraction of neighbours that must agree
    dense_min_points: int = 12           # consistent grid points a region needs
    # fine stage (lib.matching.fine): small copies, textured cells matched and voting for a shift
    fine: bool = True
    fine_stride: int = 1                 # grid step in pixels (at least)
    fine_max_grid: int = 512             # queries every other cell up to this side, sparser beyond
    fine_min_std: float = 2.0            # pixels whose 11 px disk varies less take no part
    fine_min_points: int = 6             # votes a (map, shift) peak needs
    fine_free: bool = True               # also copies rotated by other angles than right ones
    # panels and text
    panels: bool = True                  # split compound figures into panels (features: within/across)
    text: bool = True                    # mark text, letters and scale bars (feature: text fraction)
    # v1's cascade of cut-offs (decision="cascade")
    min_detail_ncc: float = 0.75         # median NCC of the fine detail over an accepted copy
    max_overlap: float = 0.25            # source and copy sharing more of the smaller: periodic texture
    max_self_similarity: float = 0.6     # autocorrelation of a region's detail off its centre: periodic
    max_two_tone: float = 0.8            # pixels near the two commonest gray levels: graphics
    max_stroke: float = 5.0              # stroke width (pixels) of text and lines on a flat ground

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if self.dense_method not in ("patchmatch", "kdtree"):
            raise ValueError(f"dense_method must be patchmatch or kdtree, got {self.dense_method!r}")
        if self.max_side < 64:
            raise ValueError(f"max_side must be at least 64, got {self.max_side}")
        if not 0 < self.ratio < 1:
            raise ValueError(f"ratio must lie in (0, 1), got {self.ratio}")
        if self.min_inliers < 3:
            raise ValueError(f"min_inliers must be at least 3, got {self.min_inliers}")

    @classmethod
    def v2(cls, **changes) -> "MatchConfig":  # noqa: UP037 (as cascade)
        """v2: keypoints and the dense field, no fine stage (copies under about 2 % of the figure
        rarely get a candidate), judged by the verifier."""
        return replace(cls(fine=False), **changes)

    @classmethod
    def cascade(cls, **changes) -> "MatchConfig":  # noqa: UP037 (a change here would invalidate matcher caches)
        """v1: the cascade of hand-set cut-offs (as tuned on the demo figures), no verifier."""
        v1 = dict(decision="cascade", ratio=0.6, min_inliers=6, max_events=6, min_shift=12.0,
                  scale_range=(0.4, 2.5), min_spread=2.0, max_anisotropy=1.3, flat_tolerance=0.0,
                  fill_hull=False, dense_method="kdtree", dense_max_side=768, dense_max_grid=10 ** 6,
                  dense_min_std=3.0, dense_min_points=16, panels=False, text=False, fine=False)
        return replace(cls(**v1), **changes)


@dataclass
class Event:
    """One candidate duplication: the transform source -> copy, its support, its mask, its
    features (lib.matching.features) and its score: the verifier's probability that it is a
    real copy, or under the v1 cascade the correlation of its fine detail (0 when a cut-off
    rejected it, `reason` says which)."""

    matrix: np.ndarray                   # 2x3, copy = matrix @ [x, y, 1] of the source
    stage: str                           # which detector proposed it (STAGES)
    inliers: np.ndarray                  # (n, 2, 2): source and copy points
    mask: np.ndarray                     # bool (H, W): source | copy
    features: np.ndarray                 # float32 (len(FEATURES),)
    detail: float                        # median correlation of the fine detail of copy and source
    reason: str = ""                     # why v1's cascade rejects it ("" if it passes)
    score: float = 0.0

    @property
    def mirrored(self) -> bool:
        return bool(np.linalg.det(self.matrix[:, :2]) < 0)


@dataclass
class MatchResult:
    events: list[Event] = field(default_factory=list)           # every candidate that got a mask
    threshold: float = 0.5                                      # events scoring at least this form instances
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    n_pairs: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)   # (stage, reason): no event made
    scale: float = 1.0                   # working size / image size
    panels: list[tuple[int, int, int, int]] = field(default_factory=list)   # at the image's size
    dense: Any = None                    # the dense stage's DenseField (at the working size), when it ran

    @property
    def n_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def instances(self) -> list[np.ndarray]:
        """The events scoring at least `threshold`, merged where they share pixels."""
        return merge_events([e.mask for e in self.events], [e.score for e in self.events], self.threshold)[0]


def merge_events(masks: list[np.ndarray], scores: list[float], threshold: float
                 ) -> tuple[list[np.ndarray], list[float]]:
    """The instances of the events scoring at least `threshold`: masks that share pixels are
    united (A copied to B and to C, or one event found by both detectors, is one instance),
    each scored by its best event."""
    merged: list[tuple[np.ndarray, float]] = []
    for mask, score in sorted(zip(masks, scores), key=lambda pair: -pair[1]):
        if score < threshold:
            continue
        mask = mask.copy()
        for other in [m for m in merged if (m[0] & mask).any()]:
            mask |= other[0]
            score = max(score, other[1])
            merged = [m for m in merged if m is not other]
        merged.append((mask, score))
    return [m for m, _ in merged], [s for _, s in merged]


def to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
