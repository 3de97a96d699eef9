"""The matcher's quality on a benchmark (bin/make_benchmark.py): v1's cascade beside v2's
verifier and its ablations, scored on the test split by the competition metric and by group.

The verifier variants are fitted on the benchmark's training figures (all of them: the test
split is the held-out one) and judged once on its test figures. Ablations refit the verifier:
without panels and text (their features held constant), without the PatchMatch stage (its
candidates removed from training and test), and, with `leave_out`, without the figures of one
content kind in training, judged on the test figures of that kind (does it generalise beyond
the generator's kinds?).

candidate_coverage is the measure to tune the candidate stages and masks by, on training
figures: the share of true events that some candidate covers, before any verifier."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score

from ..competition.metric import AREA_BUCKET_NAMES, area_bucket_names, pixel_f1, score_frame, score_instances
from ..competition.submission import annotation_from_instances, read_solution
from ..data.manifest import FORGED, load_manifest
from ..data.truths import truths_from_manifest, truths_from_solution
from ..errors import ProjectError
from ..inference.fusion import V1_THRESHOLD, MatchCache, MatchOutput, rescore, run_matcher
from ..matching.config import MatchConfig, merge_events
from ..matching.features import FEATURES
from ..paths import Paths
from ..training.verifier import CandidateSet, candidate_set, fit_verifier, training_figures
from .groups import event_report, figure_report, read_meta

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)

PANEL_FEATURES = ("text", "same_panel", "panel_cover")


@dataclass
class Variant:
    """A way to turn candidates into instances: which candidates it sees, which features."""

    name: str
    keep_event: Callable[[np.ndarray], np.ndarray] = lambda features: np.ones(len(features), bool)
    blank: tuple[str, ...] = ()          # features held constant (0)


VARIANTS = (Variant("v3"), Variant("v3 without panels/text", blank=PANEL_FEATURES),
            Variant("v3 without PatchMatch", keep_event=lambda f: f[:, FEATURES.index("dense")] == 0))
PREVIOUS = Variant("v2")      # v2's own candidates (MatchConfig.v2()), its verifier fitted the same way


def _restricted(output: MatchOutput, variant: Variant) -> MatchOutput:
    """`output` with only the variant's events, its blanked features zero."""
    if not len(output.scores):
        return output
    keep = variant.keep_event(output.features)
    features = output.features[keep].copy()
    for name in variant.blank:
        features[:, FEATURES.index(name)] = 0
    return replace(output, packed=output.packed[keep], features=features,
                   scores=[s for s, k in zip(output.scores, keep) if k])


def _rows(solution: pd.DataFrame, outputs: list[MatchOutput], threshold: float) -> pd.DataFrame:
    """The per-row table of metric.score_frame for the instances above `threshold`."""
    annotations = {o.path.stem: annotation_from_instances(o.above(threshold)) for o in outputs}
    submission = pd.DataFrame({"case_id": list(annotations), "annotation": list(annotations.values())})
    return score_frame(solution, submission)[1]


def _calibration_line(ax, probabilities: np.ndarray, truth: np.ndarray, bins: int, label: str,
                      fontsize: int = 8) -> None:
    """One reliability line on `ax`: in each of `bins` equal probability bins that holds any,
    the mean probability against the share of `truth`, annotated with the count."""
    which = np.clip(np.digitize(probabilities, np.linspace(0, 1, bins + 1)) - 1, 0, bins - 1)
    points = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            points.append((probabilities[inside].mean(), truth[inside].mean(), int(inside.sum())))
    if not points:
        return
    x, y, n = zip(*points)
    line, = ax.plot(x, y, marker="o", label=label)
    for xi, yi, ni in zip(x, y, n):
        ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=fontsize,
                    color=line.get_color())


def _reliability_figure(size: tuple[float, float], draw: Callable, path: Path, title: str, xlabel: str,
                        ylabel: str, ylim: tuple[float, float], legend_size: int | None = None) -> Path:
    """A reliability diagram: the diagonal, the lines `draw(ax)` adds, labels; saved to `path`."""
    fig, ax = plt.subplots(figsize=size, dpi=110)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    draw(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1), ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=legend_size)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_diagram(probabilities: np.ndarray, forged: np.ndarray, path: Path, title: str) -> Path:
    """Per figure: the verifier's best probability against the share of figures truly forged,
    in ten bins, with the count in each bin."""
    return _reliability_figure((5, 5), lambda ax: _calibration_line(ax, probabilities, forged, 10, "figures"),
                               path, title, "best candidate's probability (figure)", "share of figures forged", (0, 1))


def candidate_reliability(probabilities: np.ndarray, labels: np.ndarray, areas: np.ndarray, path: Path,
                          title: str) -> Path:
    """Per candidate, grouped by its area (source and copy as a share of the figure, taken as
    twice the copy's `area` feature) in the benchmark's area buckets: the verifier's probability
    against the share of candidates that are real copies, in five bins, with the count in each;
    one line per group."""
    buckets = area_bucket_names(areas)

    def draw(ax) -> None:
        for name in AREA_BUCKET_NAMES:
            group = buckets == name
            _calibration_line(ax, probabilities[group], labels[group], 5,
                              f"{name} ({int(group.sum())} candidates, {int(labels[group].sum())} copies)", 7)

    return _reliability_figure((6, 5.5), draw, path, title, "verifier's probability (candidate)",
                               "share of candidates that are real copies", (-0.02, 1.02), 7)


def _fitted(variant: Variant, train: tuple[list, list, list[str]], ids: list[str], tested: list[MatchOutput],
            solution: pd.DataFrame, forged: np.ndarray, seed: int) -> dict:
    """The variant's verifier fitted on the training figures `ids` of `train`, and its test rows."""
    outputs, trues, case_ids = train
    chosen = set(ids)
    pick = [k for k, c in enumerate(case_ids) if c in chosen]
    verifier, report = fit_verifier([_restricted(outputs[k], variant) for k in pick], [trues[k] for k in pick],
                                    [case_ids[k] for k in pick], seed)
    tested = [_restricted(o, variant) for o in tested]
    rescore(tested, verifier)
    best = np.array([o.best for o in tested])
    return {"threshold": verifier.threshold, "rows": _rows(solution, tested, verifier.threshold),
            "oof_candidate_auc": report["candidate_auc"], "oof_figure_auc": report["figure_auc"],
            "test_figure_auc": float(roc_auc_score(forged, best)), "best": best, "verifier": verifier,
            "model": report["model"], "tested": tested}


def compare_matchers(paths: Paths, out_dir: Path, leave_out: str | None = None, seed: int = 0, workers: int = 2,
                     progress: bool = True) -> dict:
    """The comparison on the benchmark under paths.data_dir: v1, v2 and v3 (with its ablations),
    each one's per-figure and per-event reports on the test split, the verifiers' grouped
    out-of-fold AUCs and test AUCs, v3's reliability diagrams (per figure, and per candidate by
    size) and the permutation importance of its features (test candidates); `slowest`: v3's
    slowest test figure and its seconds."""
    bench = paths.data_dir
    meta, events = read_meta(bench / "meta.csv")
    solution = read_solution(bench / "solution.csv")
    test_paths = [bench / "test_images" / f"{case}.png" for case in solution["case_id"]]
    truths = truths_from_solution(bench / "solution.csv", test_paths)
    trues = [t.instances() for t in truths]
    forged = np.array([t.forged for t in truths])
    cache_root = paths.models_dir / "cache"

    def test_outputs(config: MatchConfig, name: str) -> list[MatchOutput]:
        return run_matcher(test_paths, config, MatchCache(cache_root, config), workers, progress,
                           desc=f"test: match ({name})", score=config.decision == "cascade")

    train = training_figures(paths, True, workers, True, progress)
    test_v3 = test_outputs(MatchConfig(), "v3")
    test_v1 = test_outputs(MatchConfig.cascade(), "v1")
    results = {"v1": {"threshold": V1_THRESHOLD, "rows": _rows(solution, test_v1, V1_THRESHOLD)}}
    results["v2"] = _fitted(PREVIOUS, training_figures(paths, True, workers, True, progress, config=MatchConfig.v2()),
                            train[2], test_outputs(MatchConfig.v2(), "v2"), solution, forged, seed)
    # a case's kinds: every kind its images show (a forged figure and its authentic twin share a case_id)
    kinds = meta.groupby("case_id")["content"].agg(lambda v: set("+".join(map(str, v)).split("+")))

    def shows(case_id: str) -> bool:
        return leave_out in kinds.get(case_id, set())

    for variant in VARIANTS:
        results[variant.name] = _fitted(variant, train, train[2], test_v3, solution, forged, seed)
    if leave_out:
        name = f"v3 trained without {leave_out}"
        results[name] = _fitted(Variant(name), train, [c for c in train[2] if not shows(c)], test_v3, solution,
                                forged, seed)
        rows = results[name]["rows"]
        results[name]["rows"] = rows[[shows(c) for c in rows["case_id"]]]
    v3 = results["v3"]
    v3["diagram"] = reliability_diagram(v3["best"], forged, out_dir / "v3_reliability.png",
                                        f"v3 on the benchmark's test split ({len(forged)} figures)")
    candidates = candidate_set(v3["tested"], trues, list(solution["case_id"]))
    probabilities = np.concatenate([np.asarray(o.scores, float) for o in v3["tested"]])
    v3["size_diagram"] = candidate_reliability(
        probabilities, candidates.labels.astype(float), candidates.features[:, FEATURES.index("area")] * 2,
        out_dir / "v3_reliability_by_size.png", f"v3's verifier per candidate size, test split "
        f"({len(probabilities)} candidates)")
    v3["importance"] = _importance(v3["model"], candidates, seed)
    for name in ("v2", "v3"):
        results[name]["losses"] = score_losses(results[name]["tested"], trues, results[name]["threshold"])
    slowest = max(test_v3, key=lambda o: o.seconds)
    v3["slowest"] = (slowest.path.name, slowest.hw, slowest.seconds)
    for result in results.values():
        result["figures"], result["events"] = figure_report(result["rows"], meta), event_report(result["rows"], events)
    return results


GOOD_F1 = 0.5     # a candidate covers a true event when their pixel F1 is at least this (as candidate_coverage)
LOSSES = ("no good candidate", "good candidate dropped", "kept: one instance per event",
          "kept: extra instances", "kept: fewer instances than events")


def score_losses(outputs: list[MatchOutput], trues: list, threshold: float) -> pd.DataFrame:
    """Where the forged figures' score goes: each forged figure (a `trues` entry that is not None)
    in one of LOSSES, by what its candidates (`outputs`, scored) offered and what was kept at
    `threshold`: no candidate covers any true event; some does but none above the threshold does;
    or one is kept, with as many instances as true events, more (false or split instances cost
    n_true / n_pred), or fewer (merged or missed events). Per row: figures, their mean score, and
    the score they lose as a share of all forged figures (the rows' `lost` sum to 1 - the mean
    score of the forged figures)."""
    rows = []
    for output, true in zip(outputs, trues):
        if true is None:
            continue
        masks = output.masks() if len(output.scores) else []
        covers = np.array([[pixel_f1(m, t) >= GOOD_F1 for t in true] for m in masks]).reshape(len(masks), len(true))
        kept = np.asarray(output.scores, float) >= threshold if masks else np.zeros(0, bool)
        instances = merge_events(masks, list(output.scores), threshold)[0] if masks else []
        if not covers.any():
            loss = LOSSES[0]
        elif not covers[kept].any():
            loss = LOSSES[1]
        else:
            loss = LOSSES[2 + (len(instances) > len(true)) + 2 * (len(instances) < len(true))]
        rows.append((loss, score_instances(instances, true)))
    frame = pd.DataFrame(rows, columns=["loss", "score"])
    table = frame.groupby("loss")["score"].agg(figures="size", score="mean").reindex(list(LOSSES)).fillna(0)
    table["lost"] = table["figures"] * (1 - table["score"]) / max(len(frame), 1)
    return table.astype({"figures": int})


def _importance(model, test: CandidateSet, seed: int) -> pd.Series:
    """Mean drop of the candidate ROC AUC on the test candidates when a feature is shuffled."""
    found = permutation_importance(model, test.features, test.labels, scoring="roc_auc", n_repeats=5,
                                   random_state=seed)
    return pd.Series(found.importances_mean, index=list(FEATURES)).sort_values(ascending=False)


def _block(results: dict, key: str, columns, cell) -> list[str]:
    """One line per group of `columns` in each variant's `key` report, a cell per variant."""
    names = list(results)
    lines = [f"{'group':<34}" + "".join(f"{n[:26]:>28}" for n in names)]
    first = results[names[0]][key]
    for column in columns:
        for group in first.loc[first["column"] == column, "group"]:
            rows = [results[n][key] for n in names]
            rows = [t[(t["column"] == column) & (t["group"] == group)] for t in rows]
            cells = ["-" if row.empty else cell(row.iloc[0]) for row in rows]
            lines.append(f"{column + ' ' + str(group):<34}" + "".join(f"{c:>28}" for c in cells))
    return lines


def comparison_table(results: dict, figure_columns=("label", "content", "panels", "size"),
                     event_columns=("texture_group", "area_bucket", "operation")) -> str:
    """One text table: each variant's score / recall / FP rate per figure group, and event
    recall per event group."""
    lines = ["figures: score / image recall / FP rate per variant"]
    lines += _block(results, "figures", figure_columns,
                    lambda r: f"{r.score:.3f} / {r.recall:.2f} / {r.fp_rate:.2f}")
    overall = [f"{r['rows']['score'].mean():.3f} ({len(r['rows'])} img)" for r in results.values()]
    lines.append(f"{'all figures':<34}" + "".join(f"{c:>28}" for c in overall))
    lines += ["", "events: found / events (event recall) per variant"]
    lines += _block(results, "events", event_columns,
                    lambda r: f"{r.found}/{r.events} ({r.event_recall:.2f})")
    return "\n".join(lines)


def candidate_coverage(paths: Paths, config: MatchConfig, figures: int = 100, seed: int = 0, workers: int = 2,
                       progress: bool = True) -> pd.DataFrame:
    """Per event column and group of <data-dir>/events.csv: how many true events of `figures`
    forged training figures (drawn with `seed`) some candidate of `config` covers with pixel F1
    at least FOUND_F1, every candidate counted, before any verifier: what the candidate stages
    and masks offer the verifier. Tune them by this on the training split, not on the test
    split. Candidates come from the matcher's cache under paths.models_dir where its key
    (config and source code) holds them, else are computed and kept there."""
    _, events = read_meta(paths.data_dir / "meta.csv")
    manifest = load_manifest(paths, progress=progress)
    rows = manifest[(manifest["label"] == FORGED) & ~manifest["augmented"].astype(bool)]
    if not len(rows):
        raise ValueError(f"{paths.data_dir}: no forged training figures")
    truths = truths_from_manifest(paths.data_dir, rows.sample(min(figures, len(rows)), random_state=seed))
    outputs = run_matcher([t.image_path for t in truths], config, MatchCache(paths.models_dir / "cache", config),
                          workers, progress, desc="candidates", score=False)
    table = pd.DataFrame({"case_id": [t.case_id for t in truths], "shape": [json.dumps(list(t.hw)) for t in truths],
                          "annotation": [annotation_from_instances(t.instances()) for t in truths],
                          "prediction": [annotation_from_instances(o.masks()) for o in outputs]})
    return event_report(table, events)


def match_config(settings: list[str]) -> MatchConfig:
    """MatchConfig with `KEY=VALUE` changes (VALUE read as JSON where it parses: 512, true, 0.5)."""
    names = {f.name for f in fields(MatchConfig)}
    changes = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or key not in names:
            raise ProjectError(f"--set {setting}: not KEY=VALUE with KEY a MatchConfig field "
                               f"(lib/matching/config.py), e.g. dense_max_grid=512")
        try:
            changes[key] = json.loads(text)
        except ValueError:
            changes[key] = text
    try:
        return MatchConfig(**changes)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"--set: {exc}") from None
