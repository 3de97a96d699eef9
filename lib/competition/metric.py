"""The competition metric, exactly: per-row authentic rule, Hungarian-matched instance F1
(oF1) with the excess-prediction penalty, mean over rows; plus the image-level numbers
(recall, false-positive rate, precision, net score) every report shows next to it."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..errors import RLEError, SubmissionError, preview
from ..imageio import MAX_PIXELS
from .rle import rle_decode_instances

AUTHENTIC = "authentic"

# forged-area buckets (fraction of the image), for recall per bucket and the benchmark's events
AREA_BUCKET_EDGES = (0.0, 0.005, 0.02, 0.05, 0.10, 1.0)
AREA_BUCKET_NAMES = ("tiny <0.5%", "small 0.5-2%", "medium 2-5%", "large 5-10%", "xlarge >10%")


def area_bucket_names(fractions: np.ndarray) -> np.ndarray:
    """The bucket name of each forged-area fraction."""
    index = np.clip(np.searchsorted(AREA_BUCKET_EDGES, fractions, side="right") - 1, 0, len(AREA_BUCKET_NAMES) - 1)
    return np.array(AREA_BUCKET_NAMES)[index]


def pixel_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """Pixel F1 of two binary masks, written as the competition computes it (0 when no overlap)."""
    pred, true = pred.astype(bool, copy=False), true.astype(bool, copy=False)
    return f1_from_counts(np.count_nonzero(pred & true), np.count_nonzero(pred), np.count_nonzero(true))


def f1_from_counts(tp: int, n_pred: int, n_true: int) -> float:
    """Pixel F1 from the overlap and the two masks' pixel counts (the competition's formula)."""
    fp, fn = n_pred - tp, n_true - tp
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    if precision + recall > 0:
        return 2 * (precision * recall) / (precision + recall)
    return 0.0


def of1_score(pred: Sequence[np.ndarray], true: Sequence[np.ndarray]) -> float:
    """Optimal F1 of one forged row: Hungarian matching of predicted to true instances,
    unmatched true instances count 0, times n_true / max(n_pred, n_true)."""
    if len(true) == 0:
        raise ValueError("of1_score needs at least one true instance (authentic rows score by label)")
    f1 = np.array([[pixel_f1(p, t) for t in true] for p in pred]).reshape(len(pred), len(true))
    return of1_from_matrix(f1)


def of1_from_matrix(f1: np.ndarray) -> float:
    """oF1 from the (n_pred, n_true) matrix of pixel F1s (n_pred >= 1, n_true >= 1)."""
    n_pred, n_true = f1.shape
    # Rows of zeros stand for missing predictions; with more predictions than truths the
    # assignment leaves the excess unmatched and the penalty below charges for them.
    padded = np.zeros((max(n_pred, n_true), n_true))
    padded[:n_pred] = f1
    rows, cols = linear_sum_assignment(-padded)
    penalty = n_true / max(n_pred, n_true)
    return float(np.mean(padded[rows, cols]) * penalty)


def score_instances(pred: Sequence[np.ndarray] | None, true: Sequence[np.ndarray] | None) -> float:
    """Score one row from masks; None (or no instance) means `authentic`."""
    pred_auth = pred is None or len(pred) == 0
    true_auth = true is None or len(true) == 0
    if pred_auth or true_auth:
        return float(pred_auth and true_auth)
    return of1_score(pred, true)


def score_image(pred: Sequence[np.ndarray], true: Sequence[np.ndarray] | None) -> tuple[float, float]:
    """One image's competition score and the pixel F1 of the predicted union against the true
    union (0 for a missed forged image, NaN for an authentic one): what every held-out report,
    the training loop's validation included, records per image."""
    if true is None:
        return score_instances(pred, None), float("nan")
    f1 = float(pixel_f1(np.any(pred, axis=0), np.any(true, axis=0))) if len(pred) else 0.0
    return score_instances(pred, true), f1


def weighted_score(scores: np.ndarray, forged: np.ndarray, forged_share: float | None = None) -> np.ndarray:
    """Mean row score over axis 0; with `forged_share`, forged rows weigh as if they were that
    share of the rows (a test set may hold more forged images than the validation split:
    answering authentic everywhere scored about 0.30 on the public board)."""
    scores, forged = np.asarray(scores, float), np.asarray(forged, bool)
    if forged_share is None or forged.all() or not forged.any():
        return scores.mean(0)
    weights = np.where(forged, forged_share / forged.sum(), (1 - forged_share) / (~forged).sum())
    return np.tensordot(weights, scores, axes=(0, 0))


def parse_shape(text: str, case_id: str = "?") -> tuple[int, int]:
    """Parse a solution's `shape` field, the JSON text `[H, W]`."""
    try:
        value = json.loads(text)
        height, width = (int(v) for v in value)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise SubmissionError(f"case {case_id}: shape {preview(text)} is not '[H, W]'") from None
    if height < 1 or width < 1:
        raise SubmissionError(f"case {case_id}: shape {text!r} has a non-positive side")
    if height * width > MAX_PIXELS:          # no image of the competition is; decoding would take gigabytes
        raise SubmissionError(f"case {case_id}: shape {text!r} is over the pixel budget of {MAX_PIXELS} pixels")
    return height, width


def score_row(true_annotation: str, pred_annotation: str, shape: str, case_id: str = "?") -> float:
    """Score one row as the competition does. Raises SubmissionError for malformed RLE."""
    if true_annotation == AUTHENTIC or pred_annotation == AUTHENTIC:
        return float(true_annotation == pred_annotation)
    hw = parse_shape(shape, case_id)
    try:
        true = rle_decode_instances(true_annotation, hw)
    except RLEError as exc:
        raise SubmissionError(f"solution, case {case_id}: {exc}") from None
    try:
        pred = rle_decode_instances(pred_annotation, hw)
    except RLEError as exc:
        raise SubmissionError(f"submission, case {case_id}: {exc}") from None
    return of1_score(pred, true)


@dataclass
class ScoreReport:
    """The competition score of a submission and the image-level detection numbers."""

    score: float
    n_rows: int
    n_forged: int          # rows whose truth is forged
    tp: int                # forged rows predicted forged
    fp: int                # authentic rows predicted forged
    fn: int
    tn: int
    recall: float          # tp / forged rows
    fp_rate: float         # fp / authentic rows
    precision: float       # tp / rows predicted forged
    net: int               # tp - fp, the seeds' "net score"
    mask_f1: float         # mean row score over true-positive rows (mask quality alone)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs."""
        return (f"score {self.score:.4f} | rows {self.n_rows} (forged {self.n_forged}) | "
                f"recall {self.recall:.3f} | FP rate {self.fp_rate:.3f} | "
                f"precision {self.precision:.3f} | net {self.net:+d} | mask F1 (TP rows) "
                f"{self.mask_f1:.3f}")


def score_frame(solution: pd.DataFrame, submission: pd.DataFrame) -> tuple[ScoreReport, pd.DataFrame]:
    """Score a submission against a solution (both with string `case_id`; the solution also
    with `annotation` and `shape`). Returns the report and a per-row table."""
    sol_ids, sub_ids = set(solution["case_id"]), set(submission["case_id"])
    for name, frame in (("solution", solution), ("submission", submission)):
        dup = frame["case_id"][frame["case_id"].duplicated()]
        if len(dup):
            raise SubmissionError(f"{name}: duplicated case_id {_ids(dup)}")
    if sol_ids - sub_ids:
        raise SubmissionError(f"submission: missing rows for case_id {_ids(sol_ids - sub_ids)}")
    if sub_ids - sol_ids:
        raise SubmissionError(f"submission: case_id not in the solution {_ids(sub_ids - sol_ids)}")
    rows = solution[["case_id", "annotation", "shape"]].merge(
        submission[["case_id", "annotation"]].rename(columns={"annotation": "prediction"}),
        on="case_id", how="left")
    rows["score"] = [score_row(t, p, s, c) for c, t, p, s in
                     zip(rows["case_id"], rows["annotation"], rows["prediction"], rows["shape"])]
    report = summarize_scores(rows["score"].to_numpy(), (rows["annotation"] != AUTHENTIC).to_numpy(),
                              (rows["prediction"] != AUTHENTIC).to_numpy())
    return report, rows


def summarize_scores(scores: np.ndarray, true_forged: np.ndarray, pred_forged: np.ndarray) -> ScoreReport:
    """The report of a set of scored rows: their mean score and the image-level counts."""
    scores = np.asarray(scores, dtype=float)
    true_forged, pred_forged = np.asarray(true_forged, bool), np.asarray(pred_forged, bool)
    tp = int((true_forged & pred_forged).sum())
    fp = int((~true_forged & pred_forged).sum())
    fn = int((true_forged & ~pred_forged).sum())
    tn = int((~true_forged & ~pred_forged).sum())
    return ScoreReport(
        score=float(scores.mean()) if len(scores) else 0.0,
        n_rows=len(scores), n_forged=int(true_forged.sum()), tp=tp, fp=fp, fn=fn, tn=tn,
        recall=_ratio(tp, tp + fn), fp_rate=_ratio(fp, fp + tn), precision=_ratio(tp, tp + fp),
        net=tp - fp,
        mask_f1=float(scores[true_forged & pred_forged].mean()) if tp else 0.0,
    )


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _ids(ids, limit: int = 5) -> str:
    ids = sorted(map(str, ids))
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more
