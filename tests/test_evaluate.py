"""Validation scoring and the threshold sweep: the fast sweep equals post-processing + the
metric image by image, it finds the known-best combination, and the scripts run end to end."""
import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.competition.submission import annotation_from_instances, validate_submission_file
from lib.data.demo import make_demo_dataset
from lib.data.truths import Truth
from lib.errors import ProjectError
from lib.evaluation.evaluate import (AREA_BUCKET_NAMES, SWEEP_MODELS, area_bucket_names, best_config, bucket_recall,
                                     describe_false_positives, evaluate, false_positives, sweep, write_sweep)
from lib.inference.fusion import MatchOutput
from lib.inference.infer import ImageResult
from lib.inference.tuned import TUNED_FILE
from lib.options import PostConfig
from lib.paths import HARD_NEGATIVES_FILE
from lib.training.datasets import read_hard_negatives
from tests.helpers import run_script, save_tiny_segmenter

HW = (96, 96)


def square(y, x, side, hw=HW):
    mask = np.zeros(hw, bool)
    mask[y:y + side, x:x + side] = True
    return mask


def result(name, prob, cls=0.5, brightness=128.0):
    return ImageResult(Path(f"{name}.png"), HW, brightness, cls, prob.astype(np.float16))


def truth(name, instances):
    if not instances:
        return Truth(name, Path(f"{name}.png"), False)
    return Truth(name, Path(f"{name}.png"), True, annotation=annotation_from_instances(instances), hw=HW)


def constructed_case():
    """Images whose unique best combination is classifier 0.15, seg 0.35, min_area 150."""
    results, truths = [], []
    source, copy = square(10, 10, 20), square(50, 50, 14)        # 400 px and 196 px: one event
    event = source | copy
    for i, cls in enumerate([0.5, 0.5, 0.5, 0.22, 0.17]):
        prob = np.zeros(HW)
        prob[event] = 0.6
        prob[10:14, 10:30] = 0.37                      # part of the forgery: lost at seg 0.40
        ring = square(8, 8, 24) & ~square(10, 10, 20)
        prob[ring] = 0.32                              # a halo: taken in at seg <= 0.30
        prob[80:86, 2:12] = 0.45                       # a 60 px speck: gone at min_area >= 100
        results.append(result(f"f{i}", prob, cls))
        truths.append(truth(f"f{i}", [event]))
    for i in range(3):
        prob = np.zeros(HW)
        prob[70:82, 70:80] = 0.45                      # 120 px false positive: gone at min_area >= 150
        results.append(result(f"a{i}", prob))
        truths.append(truth(f"a{i}", []))
    prob = np.zeros(HW)
    prob[20:60, 20:45] = 0.9                           # a big false positive the classifier gates at >= 0.15
    results.append(result("a_gated", prob, cls=0.12))
    truths.append(truth("a_gated", []))
    return results, truths


def test_sweep_finds_the_known_best_combination():
    results, truths = constructed_case()
    table = sweep(results, truths, PostConfig(adaptive=False), progress=False)
    assert len(table) == 216
    best = table.iloc[0]
    assert (best["classifier_threshold"], best["seg_threshold"], best["min_area"]) == (0.15, 0.35, 150)
    assert best["score"] > table.iloc[1]["score"]
    assert best_config(table, PostConfig()).min_area == 150


def test_sweep_scores_equal_post_processing_image_by_image():
    rng = np.random.default_rng(0)
    results, truths = [], []
    for i in range(14):
        prob = rng.random(HW) ** 3                     # many specks of every size
        prob[20:40, 30:60] += 0.5 * rng.random()
        instances = [square(20, 30, 20) | square(60, 10, 15)] if i % 2 else []
        if i % 4 == 3:
            instances.append(square(5, 70, 12))        # a second event
        results.append(ImageResult(Path(f"{i}.png"), HW, float(rng.choice([30, 60, 128, 230])),
                                   float(rng.random()), np.clip(prob, 0, 1).astype(np.float16)))
        truths.append(truth(str(i), instances))
    table = sweep(results, truths, PostConfig(adaptive=True), progress=False)
    for row in table.sample(n=25, random_state=0).itertuples():
        config = PostConfig(row.classifier_threshold, row.seg_threshold, int(row.min_area))
        report, _ = evaluate(results, truths, config)
        assert row.score == pytest.approx(report.score, abs=1e-12)
        assert (row.tp, row.fp, row.fn, row.tn) == (report.tp, report.fp, report.fn, report.tn)


def matched_case(seed: int, brightnesses=(128.0,)) -> tuple[list[ImageResult], list[Truth]]:
    """12 images with speckled maps, half forged (one event), each with the matcher's output: a
    near-exact match on two of three images, a false speck on the third, scored at random."""
    rng = np.random.default_rng(seed)
    results, truths = [], []
    for i in range(12):
        prob = rng.random(HW) ** 3
        prob[20:40, 30:60] += 0.5 * rng.random()
        instances = [square(20, 30, 20) | square(60, 10, 15)] if i % 2 else []
        matched = [square(20, 30, 18) | square(60, 12, 15)] if i % 3 else [square(2, 2, 9)]
        match = MatchOutput.of(Path(f"{i}.png"), HW, matched, [float(rng.uniform(0.15, 0.85))])
        results.append(ImageResult(Path(f"{i}.png"), HW, float(rng.choice(brightnesses)), float(rng.random()),
                                   np.clip(prob, 0, 1).astype(np.float16), match=match))
        truths.append(truth(str(i), instances))
    return results, truths


def test_the_sweep_models_every_post_processing_setting_or_refuses_it():
    # every PostConfig field is either swept or applied as post-processing applies it; a new field
    # must be classified in SWEEP_MODELS (and covered below) before the sweep runs with it
    assert set(SWEEP_MODELS) == {f.name for f in dataclasses.fields(PostConfig)}
    results, truths = matched_case(3, brightnesses=(30.0, 128.0, 230.0))
    grid = dict(classifier_thresholds=(0.1, 0.5), seg_thresholds=(0.2, 0.4), min_areas=(25, 200),
                matcher_thresholds=(0.3, 0.7), progress=False)
    for fusion, adaptive, similarity in itertools.product(("network", "first", "matcher"), (True, False), (0.2, 0.9)):
        base = PostConfig(fusion=fusion, adaptive=adaptive, similarity=similarity, instance_mode="all")
        for row in sweep(results, truths, base, **grid).itertuples():
            swept = {name: getattr(row, name) for name in ("classifier_threshold", "seg_threshold", "min_area",
                                                           "matcher_threshold") if not pd.isna(getattr(row, name))}
            config = dataclasses.replace(base, **{k: int(v) if k == "min_area" else v for k, v in swept.items()})
            report, _ = evaluate(results, truths, config)
            assert row.score == pytest.approx(report.score, abs=1e-12), (config, row)
    for refused, message in ((PostConfig(instance_mode="similar"), "--instances similar: the sweep scores"),
                             (PostConfig(fusion="union"), "not 'union'")):
        with pytest.raises(ProjectError, match=message):
            sweep(results, truths, refused, **grid)


def test_sweep_needs_every_map():
    results, truths = constructed_case()
    results[0].prob_map = None
    with pytest.raises(ValueError, match="pass 2 on every image"):
        sweep(results, truths, PostConfig(), progress=False)


def test_evaluate_report_and_area_buckets():
    results, truths = constructed_case()
    config = PostConfig(0.15, 0.35, 150, adaptive=False)
    report, frame = evaluate(results, truths, config)
    assert (report.tp, report.fn, report.fp, report.tn) == (5, 0, 0, 4)
    assert set(frame.loc[frame["forged"], "bucket"]) == {"large 5-10%"}   # 596 px of 9216: 6.5 %
    recall = bucket_recall(frame).set_index("bucket")
    assert list(recall.index) == list(AREA_BUCKET_NAMES)
    assert recall.loc["large 5-10%", "images"] == 5 and recall.loc["large 5-10%", "recall"] == 1.0
    assert recall.loc["tiny <0.5%", "images"] == 0
    fractions = np.array([0.001, 0.005, 0.019, 0.02, 0.07, 0.5, 1.0])
    assert list(area_bucket_names(fractions)) == ["tiny <0.5%", "small 0.5-2%", "small 0.5-2%", "medium 2-5%",
                                                  "large 5-10%", "xlarge >10%", "xlarge >10%"]


def test_false_positives_and_their_statistics():
    results, truths = constructed_case()
    authentic = [(r, t.case_id) for r, t in zip(results, truths) if not t.forged]
    found = false_positives([r for r, _ in authentic], [f"authentic/{c}" for _, c in authentic],
                            PostConfig(0.05, 0.35, 25, adaptive=False))
    assert sorted(found["image_id"]) == ["authentic/a0", "authentic/a1", "authentic/a2", "authentic/a_gated"]
    assert sorted(found["area"]) == [120, 120, 120, 1000]
    text = describe_false_positives(found, 4)
    assert "found 4 hard negatives among 4" in text and "100-500 px            3" in text


def test_write_sweep_files(tmp_path):
    results, truths = constructed_case()
    table = sweep(results, truths, PostConfig(adaptive=False), progress=False)
    written = write_sweep(table, tmp_path / "sweep_x", {"images": len(truths)})
    assert [p.suffix for p in written] == [".csv", ".json", ".png"]
    assert len(pd.read_csv(written[0])) == 216
    info = json.loads(written[1].read_text())
    assert info["best"]["min_area"] == 150 and info["images"] == len(truths)
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    make_demo_dataset(root / "data", n_forged=10, n_test=4, n_supplemental=0, min_size=96, max_size=160, seed=5,
                      progress=False)
    save_tiny_segmenter(root / "models" / "highres_no_ela_v3_best.safetensors")
    return root


def script(demo, name, *args):
    return run_script(name, *args, "--data-dir", demo / "data", "--models-dir", demo / "models",
                      "--logs-dir", demo / "logs", "--no-progress", "--workers", "0", cwd=demo)


@pytest.mark.slow
def test_validate_test_sweep_end_to_end(demo):
    first = script(demo, "validate_test.py", "--sweep")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "216 combinations" in first.stderr and "competition score" in first.stderr
    assert "recall per forged-area bucket" in first.stderr and "similar" in first.stderr
    assert len(list((demo / "logs").glob("sweep_*.png"))) == 1
    # the held-out split's choice goes beside the models, keyed by them: what prediction runs by default
    tuned = json.loads((demo / "models" / TUNED_FILE).read_text())
    assert tuned["post"]["fusion"] == "network" and tuned["measured"]["how"] == "validate_test.py --sweep"
    assert tuned["key"]["networks"] and tuned["key"]["split"] and tuned["key"]["matcher"] is None
    predicted = script(demo, "script_5_predict.py", "--output", demo / "auto.csv")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert f"--fusion auto: {demo / 'models' / TUNED_FILE}: fusion network" in predicted.stderr
    again = script(demo, "validate_test.py", "--sweep")
    assert again.returncode == 0 and "from the cache" in again.stderr

    written = (demo / "models" / TUNED_FILE).read_bytes()
    solution = script(demo, "validate_test.py", "--input-dir", demo / "data" / "test_images",
                      "--solution", demo / "data" / "solution.csv", "--sweep")
    assert solution.returncode == 0, solution.stderr[-3000:]
    assert "scoring 4 images" in solution.stderr
    assert (demo / "models" / TUNED_FILE).read_bytes() == written       # a test set never chooses

    bad = script(demo, "validate_test.py", "--min-area", "-3")
    assert bad.returncode == 1 and "min_area" in bad.stderr and "Traceback" not in bad.stderr
    bad = script(demo, "validate_test.py", "--sweep", "--instances", "similar")
    assert bad.returncode == 1 and "--instances similar: the sweep scores instance mode 'all'" in bad.stderr


@pytest.mark.slow
def test_find_hard_negatives_writes_the_file_training_reads(demo):
    result = script(demo, "find_hard_negatives.py", "--classifier-threshold", "0", "--seg-threshold", "0",
                    "--min-area", "0", "--no-adaptive")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "by brightness" in result.stderr and "by false-positive area" in result.stderr
    ids = read_hard_negatives(demo / "data" / HARD_NEGATIVES_FILE)
    # threshold 0 marks every pixel: every authentic training image is a hard negative,
    # and no validation image is mined
    manifest = pd.read_csv(demo / "data" / "train_manifest.csv", dtype=str)
    split = pd.read_csv(demo / "data" / "split.csv", dtype=str)
    val_groups = set(split.loc[split["split"] == "val", "group"])
    authentic = manifest[manifest["label"] == "0"]
    expected = set(authentic.loc[~authentic["group"].isin(val_groups), "image_id"])
    assert ids == expected and ids


@pytest.mark.slow
def test_predict_script_writes_a_valid_submission_and_reuses_the_cache(demo):
    output = demo / "submission.csv"
    first = script(demo, "script_5_predict.py", "--output", output, "--fusion", "network", "--seg-threshold", "0.15",
                   "--min-area", "10")
    assert first.returncode == 0, first.stderr[-3000:]
    assert validate_submission_file(output, test_dir=demo / "data" / "test_images") == []
    assert "4 rows" in first.stdout
    again = script(demo, "script_5_predict.py", "--output", output, "--fusion", "network", "--min-area", "50")
    assert again.returncode == 0 and "4 of 4 images from the cache" in again.stderr

    empty = demo / "no_models"
    empty.mkdir(exist_ok=True)
    bad = run_script("script_5_predict.py", "--data-dir", demo / "data", "--models-dir", empty, "--output",
                     demo / "never.csv", "--fusion", "network", cwd=demo)
    assert bad.returncode == 1 and "no segmentation checkpoints" in bad.stderr and "Traceback" not in bad.stderr
    assert not (demo / "never.csv").exists()
    bad = script(demo, "script_5_predict.py", "--fusion", "network", "--seg-threshold", "1.5", "--output",
                 demo / "never.csv")
    assert bad.returncode == 1 and "thresholds must lie in [0, 1]" in bad.stderr


@pytest.mark.slow
def test_validate_test_compares_fusions_and_sweeps_the_matcher(demo):
    result = script(demo, "validate_test.py", "--fusion", "first", "--sweep", "--compare-fusion",
                    "--match-workers", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1512 combinations (fusion first" in result.stderr         # 7 matcher thresholds x 216
    table = result.stderr.split("fusion rules at", 1)[1]
    assert all(re.search(rf"^\s*{name}\s+[0-9.]+\s", table, re.M) for name in ("network", "matcher", "first", "union"))
    alone = script(demo, "validate_test.py", "--fusion", "matcher", "--match-workers", "1",
                   "--models-dir", demo / "no_models_here")
    assert alone.returncode == 0, alone.stderr[-3000:]      # the matcher needs no checkpoint
    assert "matcher: the verifier's threshold" in alone.stderr
