"""Fitting the verifier: candidates labelled by their overlap with the ground truth, a
gradient-boosted tree model fitted with cross-validation grouped by figure (candidates of one
figure are correlated), and the figure threshold chosen on the out-of-fold probabilities by
the competition's own score."""
from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from ..competition.metric import score_instances, weighted_score
from ..data.demo.negatives import matcher_negatives
from ..data.manifest import load_manifest
from ..data.split import load_or_make_split, split_rows
from ..data.truths import truths_from_manifest
from ..imageio import write_png
from ..inference.fusion import MatchCache, run_matcher
from ..matching.config import MatchConfig, merge_events
from ..matching.features import FEATURES, schema_hash
from ..matching.treemodel import export_hgb
from ..matching.verifier import Verifier, VerifierError, default_verifier
from ..options import VERIFIER_NEGATIVES as NEGATIVES
from ..paths import Paths

log = logging.getLogger(__name__)

NEGATIVES_SEED = 0                      # of the synthetic hard negatives (how many: VERIFIER_NEGATIVES)
POSITIVE_INSIDE = 0.5                   # a candidate at least half inside the true masks is a real copy
THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
PARAMS = dict(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
              early_stopping=False)    # grouped folds choose nothing at random: no automatic early stopping


def label_events(masks: Sequence[np.ndarray], true: Sequence[np.ndarray] | None) -> np.ndarray:
    """(n,) fraction of each candidate mask inside the true instances (0 for an authentic figure)."""
    if not true or not len(masks):
        return np.zeros(len(masks))
    union = np.any(np.stack(true), axis=0)
    return np.array([float((m & union).sum()) / max(int(m.sum()), 1) for m in masks])


@dataclass
class CandidateSet:
    """The candidates of a set of figures: features (n, F), labels, and which figure each is of."""

    features: np.ndarray
    inside: np.ndarray                  # fraction inside the true masks
    figure: np.ndarray                  # index into the figure lists
    case_ids: list[str]
    forged: np.ndarray                  # per figure

    @property
    def labels(self) -> np.ndarray:
        return (self.inside >= POSITIVE_INSIDE).astype(int)

    def table(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.features, columns=list(FEATURES))
        frame.insert(0, "case_id", [self.case_ids[i] for i in self.figure])
        frame["inside"], frame["label"] = self.inside, self.labels
        return frame


def candidate_set(outputs: Sequence, trues: Sequence[list[np.ndarray] | None], case_ids: Sequence[str]
                  ) -> CandidateSet:
    """Every event of the matcher's `outputs` (lib.inference.fusion.MatchOutput), labelled by `trues`."""
    feats, inside, figure = [], [], []
    for k, (output, true) in enumerate(zip(outputs, trues)):
        if output.error or not len(output.scores):
            continue
        feats.append(output.features)
        inside.append(label_events(output.masks(), true))
        figure.append(np.full(len(output.scores), k))

    def cat(parts, empty):
        return np.concatenate(parts) if parts else empty
    return CandidateSet(cat(feats, np.zeros((0, len(FEATURES)), np.float32)), cat(inside, np.zeros(0)),
                        cat(figure, np.zeros(0, int)), list(case_ids), np.array([t is not None for t in trues]))


def figure_scores(outputs: Sequence, trues: Sequence, probabilities: Sequence[np.ndarray],
                  thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """(figures, thresholds) competition score of each figure when its events of probability
    at least each threshold are its instances."""
    table = np.zeros((len(outputs), len(thresholds)))
    for k, (output, true, probs) in enumerate(zip(outputs, trues, probabilities)):
        masks = output.masks() if len(probs) else []
        for j, threshold in enumerate(thresholds):
            table[k, j] = score_instances(merge_events(masks, list(probs), threshold)[0] if masks else [], true)
    return table


def per_figure(values: np.ndarray, candidates: CandidateSet, n_figures: int) -> list[np.ndarray]:
    """Split per-candidate `values` into one array per figure."""
    return [values[candidates.figure == k] for k in range(n_figures)]


def fit_verifier(outputs: Sequence, trues: Sequence, case_ids: Sequence[str], seed: int = 0, folds: int = 5,
                 forged_share: float | None = None, summary: dict | None = None) -> tuple[Verifier, dict]:
    """The verifier fitted on every candidate of `outputs`, its threshold chosen on grouped
    out-of-fold probabilities, and a report (AUCs, the threshold curve, out-of-fold figure
    probabilities)."""
    data = candidate_set(outputs, trues, case_ids)
    # grouped by case_id: a forged figure and its authentic twin share one (and their content)
    y, groups = data.labels, np.unique(np.asarray(case_ids), return_inverse=True)[1][data.figure]
    if len(np.unique(y)) < 2:
        raise ValueError(f"the candidates of {len(outputs)} figures hold {'no' if not y.any() else 'only'} "
                         "real copies: nothing to learn a verifier from")
    oof = np.zeros(len(y))
    splitter = GroupKFold(n_splits=min(folds, len(np.unique(groups))), shuffle=True, random_state=seed)
    for train, held in splitter.split(data.features, y, groups):
        model = HistGradientBoostingClassifier(random_state=seed, **PARAMS)
        if len(np.unique(y[train])) < 2:
            oof[held] = y[train].mean()
            continue
        oof[held] = model.fit(data.features[train], y[train]).predict_proba(data.features[held])[:, 1]
    probabilities = per_figure(oof, data, len(outputs))
    curve = weighted_score(figure_scores(outputs, trues, probabilities), data.forged, forged_share)
    tied = np.flatnonzero(curve >= curve.max() - 1e-9)
    best = int(tied[len(tied) // 2])          # the middle of the best plateau: the most margin either way
    best_per_figure = np.array([p.max(initial=0.0) for p in probabilities])
    report = {"candidates": int(len(y)), "positives": int(y.sum()), "figures": len(outputs),
              "forged_figures": int(data.forged.sum()), "folds": splitter.n_splits,
              "candidate_auc": float(roc_auc_score(y, oof)),
              "figure_auc": float(roc_auc_score(data.forged, best_per_figure)) if 0 < data.forged.sum() < len(outputs)
              else float("nan"),
              "threshold": float(THRESHOLDS[best]), "score": float(curve[best]), "forged_share": forged_share,
              "curve": {f"{t:.2f}": round(float(v), 4) for t, v in zip(THRESHOLDS, curve)}}
    model = HistGradientBoostingClassifier(random_state=seed, **PARAMS).fit(data.features, y)
    training = {**(summary or {}), **{k: v for k, v in report.items() if k != "curve"}, "seed": seed,
                "params": PARAMS, "schema": schema_hash(), "sklearn": sklearn.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    return Verifier(export_hgb(model, {"features": list(FEATURES)}), report["threshold"], training), \
        {**report, "oof": best_per_figure, "model": model}


def negative_figures(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """The files of lib.data.demo.negatives' `n` hard negatives (lettering, periodic texture) in
    `folder`, drawn once (deterministic in seed and index)."""
    paths = [Path(folder) / f"negative-{k}.png" for k in range(n)]
    if not all(p.is_file() for p in paths):
        for path, image in zip(paths, matcher_negatives(n, seed)):
            write_png(path, image)
    return paths


def training_figures(paths: Paths, include_val: bool = False, workers: int = 2, cache: bool = True,
                     progress: bool = True, negatives: int = NEGATIVES, config: MatchConfig = MatchConfig()
                     ) -> tuple[list, list, list[str]]:
    """(matcher outputs, true instances, case_ids) of the training split's original figures
    (with `include_val`, the validation split's too) of the training layout under
    paths.data_dir, and of `negatives` synthetic hard negatives (text, periodic texture: the
    generator of any training data may lack them); the matcher's candidates cached under the
    models folder, unscored; `config`: the matcher's (the default: the current version)."""
    manifest = load_manifest(paths, progress=progress)
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    rows = pd.concat([train_rows, val_rows], ignore_index=True) if include_val else train_rows
    rows = rows[~rows["augmented"].astype(bool)].reset_index(drop=True)   # augmented copies: the same figures
    if not len(rows):
        raise ValueError(f"{paths.data_dir}: no training figures to fit a verifier on")
    truths = truths_from_manifest(paths.data_dir, rows)
    images = [t.image_path for t in truths]
    images += negative_figures(paths.models_dir / "cache" / f"negatives-{NEGATIVES_SEED}", negatives, NEGATIVES_SEED)
    outputs = run_matcher(images, config, MatchCache(paths.models_dir / "cache", config) if cache else None, workers,
                          progress, desc="verifier: match", score=False)
    trues = [t.instances() for t in truths] + [None] * negatives
    case_ids = [t.case_id for t in truths] + [p.stem for p in images[len(truths):]]
    kept = [k for k, o in enumerate(outputs) if not o.error]
    return [outputs[k] for k in kept], [trues[k] for k in kept], [case_ids[k] for k in kept]


def score_of(verifier: Verifier, outputs: Sequence, trues: Sequence, forged_share: float | None = None) -> float:
    """The competition score `verifier` gets on the figures of `outputs` at its own threshold."""
    probabilities = [verifier.probabilities(o.features) if len(o.scores) else np.zeros(0) for o in outputs]
    forged = np.array([t is not None for t in trues])
    return float(weighted_score(figure_scores(outputs, trues, probabilities, [verifier.threshold]), forged,
                                forged_share)[0])


def train_from_layout(paths: Paths, include_val: bool = False, seed: int = 0, folds: int = 5,
                      forged_share: float | None = None, workers: int = 2, cache: bool = True,
                      progress: bool = True, negatives: int = NEGATIVES) -> tuple[Verifier, dict]:
    """Fit a verifier on the training layout under paths.data_dir (see training_figures). The
    report's `default_score` is the committed default verifier's score on the same figures, to
    hold beside the fitted one's out-of-fold `score` (little data can fit a worse verifier)."""
    outputs, trues, case_ids = training_figures(paths, include_val, workers, cache, progress, negatives)
    summary = {"data": paths.data_dir.name, "figures_used": "train+val" if include_val else "train",
               "images": len(outputs), "synthetic_negatives": negatives}
    verifier, report = fit_verifier(outputs, trues, case_ids, seed, folds, forged_share, summary)
    try:
        report["default_score"] = score_of(default_verifier(), outputs, trues, forged_share)
    except VerifierError:                     # rebuilding the default itself
        report["default_score"] = float("nan")
    return verifier, report
