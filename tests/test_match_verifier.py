"""The matcher v2's learned part: a candidate's features, labels from overlaps, the verifier's
file (round trip equal to scikit-learn, refusals without running anything), fitting grouped by
figure, the committed default, and the cache keyed by the matcher's code."""
import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from lib.competition.metric import score_instances, weighted_score
from lib.data.demo import make_demo_dataset
from lib.inference.fusion import MatchOutput, matcher_source_hash
from lib.matching import (DEFAULT_VERIFIER, FEATURES, VERIFIER_NAME, MatchConfig, Verifier, VerifierError,
                          find_candidates)
from lib.matching.treemodel import export_hgb
from lib.paths import Paths
from lib.training.verifier import THRESHOLDS, fit_verifier, label_events, train_from_layout
from tests.helpers import ROOT, run_script
from tests.test_matching import copy_region, texture


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    # scikit-learn's OpenMP threads spin against each other on a busy 2-core machine
    with threadpool_limits(1, user_api="openmp"):
        yield


def best_event(kind):
    image, truth = copy_region(texture(256, 320, 0), (30, 30), 64, (200, 170), kind)
    result = find_candidates(image, MatchConfig())
    event = max(result.events, key=lambda e: score_instances([e.mask], [truth]))
    return dict(zip(FEATURES, event.features)), score_instances([event.mask], [truth])


@pytest.mark.parametrize("kind", ["translate", "rotate", "flip"])
def test_the_features_of_a_known_copy(kind):
    features, f1 = best_event(kind)
    assert f1 > 0.9
    assert features["mirrored"] == (kind == "flip")
    assert features["scale"] < 0.05 and features["anisotropy"] < 1.05
    assert features["rotation"] == pytest.approx(30 if kind == "rotate" else 0, abs=2)
    if kind != "flip":   # mirrored, points move by different distances: the median is not the centres'
        assert features["shift"] == pytest.approx(np.hypot(200 - 62, 170 - 62) / np.hypot(256, 320), rel=0.1)
    assert features["area"] == pytest.approx(64 * 64 / (256 * 320), rel=0.35)
    assert features["detail"] > 0.75 and features["overlap"] == 0 and features["two_tone"] < 0.7
    assert features["text"] < 0.05 and features["self_similarity"] < 0.5


def test_labels_are_the_share_of_a_candidate_inside_the_truth():
    true = np.zeros((20, 20), bool)
    true[:10] = True
    inside, half, outside = (np.zeros((20, 20), bool) for _ in range(3))
    inside[2:6, 2:6] = True
    half[8:12, :10] = True
    outside[15:, 15:] = True
    assert label_events([inside, half, outside], [true]).tolist() == [1.0, 0.5, 0.0]
    assert label_events([inside], None).tolist() == [0.0]          # an authentic figure


def fitted(seed=0, n=600):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    x[rng.random((n, len(FEATURES))) < 0.05] = np.nan
    y = (np.nan_to_num(x[:, FEATURES.index("detail")]) + 0.5 * rng.normal(size=n) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(x, y)
    return model, x


def test_the_verifier_round_trips_through_its_file(tmp_path):
    model, x = fitted()
    Verifier(export_hgb(model), 0.4, {"note": "test"}).save(tmp_path / "v.json")
    loaded = Verifier.load(tmp_path / "v.json")
    assert loaded.threshold == 0.4 and loaded.training == {"note": "test"}
    np.testing.assert_allclose(loaded.probabilities(x), model.predict_proba(x)[:, 1], rtol=0, atol=1e-9)


def test_a_tampered_crafted_or_foreign_file_is_refused_without_running_anything(tmp_path):
    model, _ = fitted()
    good = Verifier(export_hgb(model), 0.4).to_json()

    def refused(content, match):
        path = tmp_path / "bad.json"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        with pytest.raises(VerifierError, match=match) as info:
            Verifier.load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)

    canary = tmp_path / "ran"

    class Payload:                      # a pickle that creates `canary` when unpickled
        def __reduce__(self):
            return Path.touch, (canary,)

    refused(pickle.dumps(Payload()), "not a readable JSON verifier")
    refused(json.dumps(good).encode()[:-40], "not a readable JSON verifier")                  # truncated
    refused({**good, "format": "someone-else/1"}, "not a match verifier")
    refused({**good, "features": list(FEATURES[::-1])}, "other than this matcher's")
    refused({**good, "threshold": 1.5}, "not a probability")
    cyclic = json.loads(json.dumps(good))
    tree = cyclic["model"]["trees"][0]
    split = next(i for i, leaf in enumerate(tree["is_leaf"]) if not leaf)
    tree["left"][split] = 0                                                                      # a loop
    refused(cyclic, "tree 0")
    assert not canary.exists()


def square(y, x, side, hw=(48, 48)):
    mask = np.zeros(hw, bool)
    mask[y:y + side, x:x + side] = True
    return mask


def test_fitting_is_grouped_by_figure_and_picks_the_threshold_by_the_score():
    rng = np.random.default_rng(0)
    outputs, trues, ids = [], [], []
    for k in range(60):
        forged = k % 2 == 0
        true = [square(4, 4, 12) | square(30, 30, 12)] if forged else None
        masks = [square(4, 4, 12) | square(30, 30, 12), square(20, 2, 6)] if forged else [square(20, 2, 6)]
        features = rng.normal(size=(len(masks), len(FEATURES))).astype(np.float32)
        features[:, FEATURES.index("detail")] = [0.95] + [0.2] * (len(masks) - 1) if forged else 0.2
        features[:, FEATURES.index("detail")] += rng.normal(0, 0.05, len(masks))
        outputs.append(MatchOutput.of(Path(f"{k}.png"), (48, 48), masks, [0.0] * len(masks), features))
        trues.append(true)
        ids.append(str(k))
    verifier, report = fit_verifier(outputs, trues, ids, seed=0, folds=3)
    assert report["candidate_auc"] > 0.95 and report["figure_auc"] > 0.95
    assert report["threshold"] in THRESHOLDS and report["score"] > 0.9
    assert report["candidates"] == 90 and report["positives"] == 30 and report["folds"] == 3
    probs = verifier.probabilities(np.stack([o.features[0] for o in outputs]))
    assert (probs[::2] >= verifier.threshold).all() and (probs[1::2] < verifier.threshold).all()
    with pytest.raises(ValueError, match="no real copies"):
        fit_verifier(outputs[1::2], trues[1::2], ids[1::2])


def test_forged_share_weighs_the_forged_rows():
    scores, forged = np.array([1.0, 0.0, 0.0, 1.0]), np.array([True, True, False, False])
    assert weighted_score(scores, forged) == 0.5
    assert weighted_score(scores, forged, 0.7) == pytest.approx(0.7 * 0.5 + 0.3 * 0.5)
    assert weighted_score(np.array([1.0, 1.0, 0.0]), np.array([True, True, False]), 0.7) == pytest.approx(0.7)


def test_the_committed_default_verifier_is_small_current_and_rebuildable():
    assert DEFAULT_VERIFIER.stat().st_size < 2 ** 20
    verifier = Verifier.load(DEFAULT_VERIFIER)
    assert 0 < verifier.threshold < 1
    assert "bin/train_match_verifier.py" in verifier.training["command"]
    assert verifier.training["figure_auc"] > 0.5


def test_the_cache_key_follows_the_matchers_code_not_its_comments_or_the_verifier(tmp_path):
    folder = tmp_path / "matching"
    shutil.copytree(ROOT / "lib" / "matching", folder,
                    ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    before = matcher_source_hash(folder)
    (folder / "verifier.py").write_text((folder / "verifier.py").read_text() + "\n# a new verifier\n")
    assert matcher_source_hash(folder) == before
    dense = (folder / "dense.py").read_text()
    (folder / "dense.py").write_text(dense + "\n# a comment, a docstring: the same code\n")
    assert matcher_source_hash(folder) == before
    (folder / "dense.py").write_text(dense.replace("step = max(config.dense_stride", "step = min(config.dense_stride"))
    assert matcher_source_hash(folder) != before


@pytest.mark.slow
def test_train_match_verifier_fits_caches_and_is_then_used(tmp_path, caplog):
    data, models, logs = tmp_path / "data", tmp_path / "models", tmp_path / "logs"
    make_demo_dataset(data, n_forged=8, n_test=2, n_supplemental=0, min_size=128, max_size=160, seed=3,
                      progress=False)
    flags = ["--data-dir", data, "--models-dir", models, "--logs-dir", logs, "--no-progress", "--folds", "3",
             "--negatives", "4"]
    first = run_script("train_match_verifier.py", *flags, "--include-val", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "the committed default verifier on the same figures" in first.stderr
    if not (models / VERIFIER_NAME).is_file():     # the default scored better on these few figures: kept
        assert "the committed default scores better on these figures" in first.stderr
        first = run_script("train_match_verifier.py", *flags, "--include-val", "--keep-worse", cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
    verifier = Verifier.load(models / VERIFIER_NAME)
    assert verifier.training["figures_used"] == "train+val" and verifier.training["positives"] > 0
    assert verifier.training["synthetic_negatives"] == 4
    assert len(list((models / "cache").glob("negatives-*/*.png"))) == 4
    assert "--include-val" in verifier.training["command"]
    with caplog.at_level(logging.INFO):                                              # a re-fit, in process
        again, _ = train_from_layout(Paths(data, models, logs), include_val=True, folds=3, negatives=4,
                                     progress=False)
    assert "from the cache" in caplog.text
    assert "matched in" not in caplog.text                                            # it re-matched nothing
    assert again.model == verifier.model                                             # and is reproducible
    output = tmp_path / "sub.csv"
    used = run_script("match_copy_move.py", "--input-dir", data / "test_images", "--output", output,
                      "--models-dir", models, "--logs-dir", logs, "--no-progress", cwd=tmp_path)
    assert used.returncode == 0 and f"verifier {VERIFIER_NAME}" in used.stderr
    bad = run_script("train_match_verifier.py", *flags, "--forged-share", "1.5", cwd=tmp_path)
    assert bad.returncode != 0 and "--forged-share" in bad.stderr and "Traceback" not in bad.stderr


def test_the_comparison_table_puts_each_variant_beside_the_others():
    import pandas as pd

    from lib.evaluation.matcher import comparison_table

    def result(score, found):
        return {"figures": pd.DataFrame([{"column": "label", "group": "forged", "score": score, "recall": 0.4,
                                          "fp_rate": 0.0}]),
                "events": pd.DataFrame([{"column": "texture_group", "group": "flat <3", "found": found, "events": 5,
                                         "event_recall": found / 5}]),
                "rows": pd.DataFrame({"score": [score, 1.0]})}

    lines = comparison_table({"v1": result(0.2, 1), "v2": result(0.3, 2)}).splitlines()
    forged = next(line for line in lines if line.startswith("label forged"))
    assert forged.split()[2:] == ["0.200", "/", "0.40", "/", "0.00", "0.300", "/", "0.40", "/", "0.00"]
    assert next(line for line in lines if line.startswith("all figures")).split()[2:] == \
        ["0.600", "(2", "img)", "0.650", "(2", "img)"]
    assert next(line for line in lines if line.startswith("texture_group")).split()[-2:] == ["2/5", "(0.40)"]


def test_score_losses_puts_each_forged_figure_where_its_score_goes():
    from lib.evaluation.matcher import LOSSES, score_losses
    square = np.zeros((40, 40), bool)
    square[5:15, 5:15] = square[25:35, 25:35] = True      # one event: source and copy
    other = np.zeros((40, 40), bool)
    other[0:4, 30:38] = True                               # a false instance elsewhere
    half = np.zeros((40, 40), bool)
    half[5:15, 5:15] = True                                # the source alone: pixel F1 2/3, still a good candidate
    figures = [([], []),                                   # no candidate
               ([other], [0.9]),                           # only a false one, kept
               ([square], [0.2]),                          # the right one, dropped
               ([square], [0.9]),                          # kept: exact
               ([square, other], [0.9, 0.8]),              # kept, and a false instance beside it
               ([half], [0.9])]                            # kept: the source alone
    outputs = [MatchOutput.of(Path(f"{k}.png"), (40, 40), masks, scores) for k, (masks, scores) in enumerate(figures)]
    trues = [[square]] * len(figures) + [None]
    outputs.append(MatchOutput.of(Path("authentic.png"), (40, 40), [other], [0.9]))
    table = score_losses(outputs, trues, 0.5)
    assert list(table.index) == list(LOSSES)
    assert table["figures"].tolist() == [2, 1, 2, 1, 0]
    assert table.loc["kept: one instance per event", "score"] == pytest.approx((1 + 2 / 3) / 2)
    assert table.loc["kept: extra instances", "score"] == pytest.approx(0.5)     # n_true / n_pred = 1 / 2
    mean = np.mean([0, 0, 0, 1, 0.5, 2 / 3])
    assert table["lost"].sum() == pytest.approx(1 - mean)
