"""A copy-move detector that needs no GPU and no pretrained weights: self-matching, geometric
verification, exact masks, and a learned verifier.

Three detectors propose transforms (a region at a moved, rotated, scaled or mirrored place
looks like another): keypoints (keypoints.py: SIFT matched against itself and its mirror
image, large and transformed copies), a dense field (dense.py: PatchMatch over Zernike
moments of every patch, the method of Cozzolino, Poggi & Verdoliva 2015; weakly textured
copies) and the fine stage (fine.py: every pixel's 11 px disk matched, the rotation or flip
between partners read from the moments' phases, and a Hough vote that a copy of a few cells
wins; copies under 2 % of the figure, and copies rotated by any angle). Point pairs are explained by
transforms fitted with RANSAC (transforms.py);
for each, the image is compared with itself warped by it, and the agreeing area around the
inliers is the copy, its pre-image the source; both together are one instance, one
duplication event as the ground truth marks it (regions.py). Each candidate carries a feature
vector (features.py): its geometry, how well content and fine detail agree, texture,
periodicity (content.py), text and panels (panels.py). The verifier (verifier.py, trees as
JSON evaluated by treemodel.py) turns the features into the probability of a real copy;
candidates above the threshold that share pixels merge into one instance (match.py).

The defaults are v3. `MatchConfig.v2()` is v3 without the fine stage and `MatchConfig.cascade()`
is v1 (fewer candidates cut by hand-set thresholds), both kept to compare.
debug.py draws what the matcher did; every candidate dropped before the verifier is recorded
with its reason in MatchResult.rejected."""
from .config import DECISIONS, STAGES, Event, MatchConfig, MatchResult, merge_events, to_gray
from .debug import debug_image, describe_event, describe_operation
from .dense import FIELD_MAP_SIDE, FIELD_MAPS, field_maps, zernike_kernels
from .features import FEATURES, schema_hash
from .match import find_candidates, match_image, score_events
from .verifier import (DEFAULT_VERIFIER, VERIFIER_NAME, Verifier, VerifierError, default_verifier, load_verifier,
                       resolve_verifier)

__all__ = ["DECISIONS", "DEFAULT_VERIFIER", "Event", "FEATURES", "FIELD_MAPS", "FIELD_MAP_SIDE", "field_maps",
           "MatchConfig", "MatchResult", "STAGES",
           "VERIFIER_NAME", "Verifier", "VerifierError", "debug_image", "default_verifier", "describe_event",
           "describe_operation",
           "find_candidates", "load_verifier", "match_image", "score_events", "merge_events", "resolve_verifier",
           "schema_hash", "to_gray",
           "zernike_kernels"]
