"""Scoring the pipeline on held-out images: the competition score with the image-level numbers,
recall per forged-area bucket, and the threshold sweep that re-runs post-processing only.

Ground truth comes from the training layout (masks; the held-out split by default) or from a
solution CSV. The sweep precomputes, per image and per base pixel threshold, the connected
components of the thresholded map and their overlap with every true instance; each
(classifier threshold, min_area) pair then costs a few array sums, and its scores equal
what post-processing + the metric give image by image (tests/test_evaluate.py checks this).
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..competition.metric import (AREA_BUCKET_NAMES, ScoreReport, area_bucket_names, f1_from_counts, of1_from_matrix,
                                  score_image, score_instances, summarize_scores, weighted_score)
from ..data.truths import Truth
from ..errors import ProjectError
from ..fileio import atomic_path, atomic_write_text
from ..inference.infer import ImageResult, result_instances
from ..inference.postprocess import adaptive_threshold, resize_probability
from ..options import FUSIONS, INSTANCE_MODES, PostConfig

# the seeds' grid: 6 x 6 x 6 = 216 combinations
SWEEP_CLASSIFIER = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
SWEEP_SEG = (0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
SWEEP_MIN_AREA = (25, 50, 100, 150, 200, 300)
SWEEP_MATCHER = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)   # the verifier's probability


# --- one configuration, image by image -----------------------------------------------------

def evaluate(results: Sequence[ImageResult], truths: Sequence[Truth], config: PostConfig,
             progress: bool = False) -> tuple[ScoreReport, pd.DataFrame]:
    """Score `results` under `config`: the report and a per-image table (case_id, forged,
    predicted, score, area fraction, bucket, number of predicted instances, pixel F1 of the
    predicted union against the true union: 0 for a missed forged image, NaN for an authentic one)."""
    records = []
    for result, truth in tqdm(list(zip(results, truths)), desc=f"score ({config.instance_mode})",
                              unit="img", disable=not progress):
        pred = result_instances(result, config)
        true = truth.instances()
        score, f1 = score_image(pred, true)
        records.append({"case_id": truth.case_id, "forged": truth.forged, "predicted": bool(pred),
                        "score": score, "forged_fraction": float(np.any(true, axis=0).mean()) if true else 0.0,
                        "n_pred": len(pred), "n_true": len(true or []), "pixel_f1": f1})
    frame = pd.DataFrame.from_records(records)
    frame["bucket"] = np.where(frame["forged"], area_bucket_names(frame["forged_fraction"].to_numpy()), "")
    report = summarize_scores(frame["score"].to_numpy(), frame["forged"].to_numpy(), frame["predicted"].to_numpy())
    return report, frame


def bucket_recall(frame: pd.DataFrame) -> pd.DataFrame:
    """Recall (forged images predicted forged) and mean score per forged-area bucket."""
    forged = frame[frame["forged"]]
    rows = []
    for name in AREA_BUCKET_NAMES:
        part = forged[forged["bucket"] == name]
        rows.append({"bucket": name, "images": len(part),
                     "recall": part["predicted"].mean() if len(part) else float("nan"),
                     "mean score": part["score"].mean() if len(part) else float("nan")})
    return pd.DataFrame(rows)


def compare_instance_modes(results: Sequence[ImageResult], truths: Sequence[Truth], config: PostConfig,
                           progress: bool = False) -> pd.DataFrame:
    """The competition score of each instance-forming mode at `config`'s thresholds."""
    rows = []
    for mode in INSTANCE_MODES:
        report, frame = evaluate(results, truths, PostConfig(**{**config.as_dict(), "instance_mode": mode}),
                                 progress)
        tp_rows = frame[frame["forged"] & frame["predicted"]]
        rows.append({"instances": mode, "score": report.score, "mask F1 (TP rows)": report.mask_f1,
                     "mean predicted instances (TP rows)": tp_rows["n_pred"].mean() if len(tp_rows) else 0.0})
    return pd.DataFrame(rows)


def compare_fusions(results: Sequence[ImageResult], truths: Sequence[Truth], config: PostConfig,
                    fusions: Sequence[str] = FUSIONS, progress: bool = False,
                    configs: Mapping[str, PostConfig] | None = None) -> pd.DataFrame:
    """The competition score and image-level numbers of each fusion rule at `config`'s thresholds,
    or at its own config in `configs` (a rule's own best thresholds) where it has one."""
    rows = []
    for fusion in fusions:
        rule = (configs or {}).get(fusion) or PostConfig(**{**config.as_dict(), "fusion": fusion})
        report, frame = evaluate(results, truths, rule, progress)
        rows.append({"fusion": fusion, "score": report.score, "recall": report.recall, "fp_rate": report.fp_rate,
                     "precision": report.precision, "tp": report.tp, "fp": report.fp, "fn": report.fn,
                     "tn": report.tn, "mask F1 (TP rows)": report.mask_f1})
    return pd.DataFrame(rows)


# --- the sweep -------------------------------------------------------------------------------

@dataclass
class _Components:
    """One image at one base threshold: component areas and their overlaps with true instances."""

    areas: np.ndarray            # (K,) pixels per component
    overlaps: np.ndarray         # (K, n_true) pixels of component k inside true instance j
    true_sizes: np.ndarray       # (n_true,)


def _components(prob: np.ndarray, threshold: float, true: list[np.ndarray] | None) -> _Components:
    mask = (prob >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    if not true:
        return _Components(areas, np.zeros((len(areas), 0), np.int64), np.zeros(0, np.int64))
    overlaps = np.stack([np.bincount(labels[t], minlength=count)[1:] for t in true], axis=1)
    return _Components(areas, overlaps.astype(np.int64), np.array([int(t.sum()) for t in true]))


def _score(components: _Components, min_area: int, forged: bool) -> tuple[float, bool]:
    """(row score, predicted forged) of the 'all regions as one instance' prediction."""
    keep = components.areas >= min_area
    if not keep.any():
        return float(not forged), False
    if not forged:
        return 0.0, True
    n_pred = int(components.areas[keep].sum())
    tp = components.overlaps[keep].sum(axis=0)
    f1 = np.array([[f1_from_counts(int(t), n_pred, int(n)) for t, n in zip(tp, components.true_sizes)]])
    return of1_from_matrix(f1), True


def _matcher_outcomes(results: Sequence[ImageResult], trues: list[list[np.ndarray] | None],
                      thresholds: Sequence[float]) -> dict[float, list[tuple[float, bool] | None]]:
    """Per matcher threshold, per image: (row score, True) where the matcher's instances above the
    threshold make the image forged, None where it finds nothing there."""
    outcomes = {}
    for threshold in thresholds:
        row = []
        for result, true in zip(results, trues):
            kept = result.match.above(threshold) if result.match is not None and not result.error else []
            row.append((score_instances(kept, true), True) if kept else None)
        outcomes[threshold] = row
    return outcomes


# How the sweep treats each PostConfig field: swept over a grid, or applied as post-processing applies
# it. A field not listed is one the sweep does not model: a base config that sets it is refused
# (check_sweepable), so a new post-processing rule cannot be silently left out of the sweep.
SWEEP_MODELS = {
    "classifier_threshold": "swept", "seg_threshold": "swept", "min_area": "swept", "matcher_threshold": "swept",
    "adaptive": "as given", "fusion": "as given: network, matcher or first",
    "instance_mode": "'all' only", "similarity": "unused under instance mode 'all'",
}


def check_sweepable(base: PostConfig) -> None:
    """Raise ProjectError (one line) where `base` asks for post-processing the sweep does not model."""
    defaults = PostConfig()
    unmodelled = [name for name in base.as_dict()
                  if name not in SWEEP_MODELS and getattr(base, name) != getattr(defaults, name)]
    if unmodelled:
        raise ProjectError(f"the sweep does not model {', '.join(unmodelled)}: score it at fixed thresholds "
                           f"(validate_test.py without --sweep)")
    if base.instance_mode != "all":
        raise ProjectError(f"--instances {base.instance_mode}: the sweep scores instance mode 'all' (one instance "
                           f"of all regions); score other modes at fixed thresholds (validate_test.py without --sweep)")
    if base.fusion not in ("network", "matcher", "first"):
        raise ProjectError(f"the sweep scores fusion network, matcher or first, not {base.fusion!r}; "
                           f"union is scored at fixed thresholds (validate_test.py --compare-fusion)")


def sweep(results: Sequence[ImageResult], truths: Sequence[Truth], base: PostConfig,
          classifier_thresholds: Sequence[float] = SWEEP_CLASSIFIER, seg_thresholds: Sequence[float] = SWEEP_SEG,
          min_areas: Sequence[int] = SWEEP_MIN_AREA, matcher_thresholds: Sequence[float] = SWEEP_MATCHER,
          progress: bool = True, forged_share: float | None = None) -> pd.DataFrame:
    """Every threshold combination of `base`'s fusion, the rest of `base` as post-processing
    applies it (SWEEP_MODELS; what the sweep does not model is refused: check_sweepable), sorted
    by competition score (with `forged_share`, forged images weighted to that share:
    metric.weighted_score; the plain mean is `score_unweighted`; ties: higher net, then higher
    thresholds): (classifier, seg, min_area)
    for the networks, the matcher threshold for the matcher, both for `first` (the matcher's
    instances where it finds any, the networks' elsewhere). Needs every image's map (the
    predictor run with gate=None) unless fusion is `matcher`, and the matcher's output unless
    it is `network`. `union` is not swept (its instances mix both sources; score it with evaluate)."""
    check_sweepable(base)
    fusion, adaptive = base.fusion, base.adaptive
    forged = np.array([t.forged for t in truths])
    trues = [t.instances() for t in tqdm(truths, desc="sweep: truth", unit="img", disable=not progress)]
    per_image: list[dict[float, _Components] | None] = []
    if fusion != "matcher":
        for result, true in tqdm(list(zip(results, trues)), desc="sweep: components", unit="img",
                                 disable=not progress):
            if result.error:
                per_image.append(None)
                continue
            if result.prob_map is None:
                raise ValueError(f"{result.path}: no probability map (the sweep needs pass 2 on every image)")
            prob = resize_probability(result.prob_map, result.hw)
            per_image.append({seg: _components(prob, adaptive_threshold(seg, result.brightness) if adaptive
                                               else seg, true) for seg in seg_thresholds})
    matched = _matcher_outcomes(results, trues, matcher_thresholds) if fusion != "network" else {}
    nan = float("nan")
    grid = {"network": [(nan, c, s, a) for c, s, a in itertools.product(classifier_thresholds, seg_thresholds,
                                                                        min_areas)],
            "matcher": [(m, nan, nan, nan) for m in matcher_thresholds],
            "first": list(itertools.product(matcher_thresholds, classifier_thresholds, seg_thresholds,
                                            min_areas))}[fusion]
    rows = []
    for matcher_threshold, cls, seg, min_area in grid:
        scores, predicted = np.zeros(len(truths)), np.zeros(len(truths), bool)
        for i, result in enumerate(results):
            outcome = matched[matcher_threshold][i] if fusion != "network" else None
            if outcome is not None:
                scores[i], predicted[i] = outcome
            elif fusion == "matcher" or per_image[i] is None or not result.passes_gate(cls):
                scores[i] = float(not forged[i])
            else:
                scores[i], predicted[i] = _score(per_image[i][seg], min_area, forged[i])
        report = summarize_scores(scores, forged, predicted)
        rows.append({"fusion": fusion, "matcher_threshold": matcher_threshold, "classifier_threshold": cls,
                     "seg_threshold": seg, "min_area": min_area,
                     "score": float(weighted_score(scores, forged, forged_share)),
                     "score_unweighted": report.score,
                     "tp": report.tp, "fp": report.fp, "fn": report.fn, "tn": report.tn,
                     "net": report.net, "recall": report.recall, "fp_rate": report.fp_rate,
                     "precision": report.precision, "mask_f1": report.mask_f1})
    table = pd.DataFrame(rows)
    return table.sort_values(["score", "net", "matcher_threshold", "classifier_threshold", "seg_threshold",
                              "min_area"], ascending=False, kind="stable", na_position="last").reset_index(drop=True)


SWEPT = (("matcher_threshold", float), ("classifier_threshold", float), ("seg_threshold", float), ("min_area", int))


def swept_config(best: dict, base: PostConfig) -> PostConfig:
    """`base` with a sweep's best row applied: its fusion and thresholds (those the sweep left
    alone, empty or NaN, kept) and the sweep's instance forming. The one reader of a sweep's
    best row (best_config)."""
    changes = {"fusion": str(best["fusion"]), "instance_mode": "all"}
    for key, kind in SWEPT:
        value = best.get(key)
        if value is not None and not pd.isna(value):
            changes[key] = kind(value)
    return PostConfig(**{**base.as_dict(), **changes})


def best_config(table: pd.DataFrame, base: PostConfig) -> PostConfig:
    """`base` with the best row of a sweep table (sweep()) applied."""
    return swept_config(table.iloc[0].to_dict(), base)


def write_sweep(table: pd.DataFrame, stem: Path, info: dict) -> list[Path]:
    """`stem`.csv (the table), `stem`.json (best row, grid, `info`) and `stem`.png (heatmap)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, png_path = (stem.with_suffix(s) for s in (".csv", ".json", ".png"))
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    best = {k: (v.item() if hasattr(v, "item") else v) for k, v in table.iloc[0].to_dict().items()}
    atomic_write_text(json_path, json.dumps({"best": best, **info}, indent=2))
    plot_heatmap(table, png_path, info.get("matcher", "v3"))
    return [csv_path, json_path, png_path]


SCORE_STEP = 0.001            # the precision the cells print; differences below it get no colour either


def plot_heatmap(table: pd.DataFrame, path: Path, matcher: str = "v3") -> None:
    """Competition score over seg threshold x min_area at the best classifier (and matcher)
    threshold; for the matcher alone, score against its threshold (the verifier's probability,
    or v1's detail correlation). Ties are said: cells that print the same score get one colour,
    and the best row is called the first of its ties."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = table.iloc[0]
    if pd.isna(best["seg_threshold"]):
        part = table.sort_values("matcher_threshold")
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.plot(part["matcher_threshold"], part["score"], marker="o")
        ax.scatter([best["matcher_threshold"]], [best["score"]], s=120, facecolors="none", edgecolors="red",
                   label="best")
        ax.set_xlabel("matcher threshold (fine-detail correlation, v1)" if matcher == "v1"
                      else f"matcher threshold (verifier's probability of a real copy, {matcher})")
        ax.set_ylabel("competition score")
        ax.set_title("validation score of the matcher alone")
        ax.legend()
    else:
        part = table[(table["classifier_threshold"] == best["classifier_threshold"])
                     & ((table["matcher_threshold"] == best["matcher_threshold"]) | table["matcher_threshold"].isna())]
        grid = part.pivot(index="seg_threshold", columns="min_area", values="score").sort_index()
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]))
        values = grid.to_numpy()
        low, high = np.nanmin(values), np.nanmax(values)
        tied = high - low < SCORE_STEP / 2
        # the colour scale spans at least 10 printed steps: a spread of 0.00003 is not painted yellow to purple
        image = ax.imshow(values, cmap="Greys" if tied else "viridis", aspect="auto", origin="lower",
                          vmin=low if not tied else low - 1, vmax=max(high, low + 10 * SCORE_STEP) if not tied
                          else low + 1)
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
        ax.set_xlabel("min_area (pixels)")
        ax.set_ylabel("seg threshold (base)")
        for (r, c), value in np.ndenumerate(grid.to_numpy()):
            is_best = grid.index[r] == best["seg_threshold"] and grid.columns[c] == best["min_area"]
            ax.text(c, r, f"{value:.3f}" + ("*" if is_best else ""), ha="center", va="center", fontsize=8,
                    color="black" if tied or image.norm(value) > 0.5 else "white",
                    fontweight="bold" if is_best else "normal")
        where = f"classifier threshold {best['classifier_threshold']:g}"
        if not pd.isna(best["matcher_threshold"]):
            where += f", matcher first at {best['matcher_threshold']:g}"
        ties = int((table["score"] - best["score"]).abs().lt(SCORE_STEP / 2).sum())
        starred = f"* best, the first of {ties} tied rows" if ties > 1 else "* best"
        if tied:
            ax.set_title(f"validation score at {where}:\nevery cell ties at {low:.3f} (these thresholds change "
                         f"nothing here); {starred}", fontsize=8)
        else:
            ax.set_title(f"validation score at {where} ({starred})", fontsize=9)
            fig.colorbar(image, ax=ax, label="competition score")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# --- hard negatives --------------------------------------------------------------------------

BRIGHTNESS_BANDS = ((0, 50, "dark <50"), (50, 200, "normal 50-200"), (200, 256, "bright >200"))
FP_AREA_BANDS = ((0, 100, "<100 px"), (100, 500, "100-500 px"), (500, float("inf"), ">500 px"))


def false_positives(results: Sequence[ImageResult], image_ids: Sequence[str], config: PostConfig) -> pd.DataFrame:
    """The authentic images (`results` of authentic images, `image_ids` their manifest ids) that
    the pipeline calls forged under `config`: image_id, predicted area, brightness, classifier prob."""
    rows = []
    for result, image_id in zip(results, image_ids):
        instances = result_instances(result, config)
        if instances:
            rows.append({"image_id": image_id, "area": int(np.any(instances, axis=0).sum()),
                         "brightness": result.brightness, "classifier_prob": result.classifier_prob})
    return pd.DataFrame(rows, columns=["image_id", "area", "brightness", "classifier_prob"])


def describe_false_positives(found: pd.DataFrame, n_searched: int) -> str:
    """The seeds' statistics: count, breakdown by brightness, distribution of the FP area."""
    lines = [f"found {len(found)} hard negatives among {n_searched} authentic training images "
             f"({100 * len(found) / max(n_searched, 1):.1f}%)", "by brightness:"]
    for low, high, name in BRIGHTNESS_BANDS:
        lines.append(f"  {name:<16}{int(((found['brightness'] >= low) & (found['brightness'] < high)).sum()):>7}")
    lines.append("by false-positive area:")
    for low, high, name in FP_AREA_BANDS:
        lines.append(f"  {name:<16}{int(((found['area'] >= low) & (found['area'] < high)).sum()):>7}")
    return "\n".join(lines)
