"""The development benchmark: deterministic per seed whatever the workers, the Kaggle layout with
meta.csv and events.csv, masks that still sit on matching content after rescaling, noise and JPEG,
and a report by group that equals the metric computed image by image."""
import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from lib.competition.metric import AUTHENTIC, score_frame, score_row
from lib.competition.rle import rle_decode_instances, rle_encode_instances
from lib.competition.submission import read_solution
from lib.data.demo import make_benchmark
from lib.data.demo.saving import TEXTURE_GROUPS
from lib.evaluation.gallery import write_gallery
from lib.evaluation.groups import event_matches, event_report, figure_report, read_meta
from lib.imageio import load_image
from tests.helpers import run_script

SMALL = dict(n=24, min_size=192, max_size=320)
META_COLUMNS = ["case_id", "image", "split", "label", "twin", "events", "gray", "jpeg", "rescale", "noise", "hard",
                "height", "width", "content", "panels"]
EVENT_COLUMNS = ["case_id", "event", "kind", "operation", "matrix", "content", "placement", "copies", "feathered",
                 "area_fraction", "area_bucket", "texture", "texture_group", "rescale", "height", "width"]


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    summary = make_benchmark(out, seed=5, workers=2, progress=False, **SMALL)
    return out, summary


def test_the_benchmark_is_deterministic_per_seed_whatever_the_workers(bench, tmp_path):
    out, _ = bench
    again = tmp_path / "again"
    make_benchmark(again, seed=5, workers=1, progress=False, **SMALL)
    assert digest(again) == digest(out)
    other = tmp_path / "other"
    make_benchmark(other, seed=6, workers=2, progress=False, **SMALL)
    assert digest(other)["meta.csv"] != digest(out)["meta.csv"]


def test_layout_split_and_columns(bench):
    out, summary = bench
    meta, events = read_meta(out / "meta.csv")
    assert list(meta.columns) == META_COLUMNS and list(events.columns) == EVENT_COLUMNS
    solution = read_solution(out / "solution.csv")
    test_ids = set(solution["case_id"])
    assert len(test_ids) == summary["test"] == round(0.4 * SMALL["n"])
    train = meta[meta["split"] == "train"]
    assert not test_ids & set(train["case_id"])                       # split by case_id
    for row in train.itertuples():                                    # every file named in meta exists
        assert (out / row.image).is_file()
    forged = train[train["label"] == "forged"]
    for cid in forged["case_id"]:
        masks = np.load(out / "train_masks" / f"{cid}.npy")
        assert masks.shape[0] == int(forged.set_index("case_id").loc[cid, "events"])
    twins = train[train["twin"]]
    assert set(twins["case_id"]) <= set(forged["case_id"])            # a twin sits under its forgery's case_id
    assert set(events["texture_group"]) <= set(TEXTURE_GROUPS)
    assert set(events["case_id"]) == set(meta.loc[meta["label"] == "forged", "case_id"])


def _rescaled(matrix: np.ndarray, scale: float) -> np.ndarray:
    """A 2x3 transform of the drawn figure as it acts on the figure rescaled by `scale`
    (pixel centres: x' = s (x + 0.5) - 0.5)."""
    s = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])
    return (s @ np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(s))[:2]


def test_each_instance_holds_matching_content_after_rescaling_noise_and_jpeg(bench):
    out, _ = bench
    meta, events = read_meta(out / "meta.csv")
    solution = read_solution(out / "solution.csv").set_index("case_id")
    checked = 0
    for event in events[events["case_id"].isin(solution.index)].itertuples():
        row = solution.loc[event.case_id]
        image = load_image(out / "test_images" / f"{event.case_id}.png").astype(np.float32)
        mask = rle_decode_instances(row["annotation"], json.loads(row["shape"]))[event.event - 1].astype(np.uint8)
        matrix = _rescaled(np.array(json.loads(event.matrix)), float(event.rescale))
        h, w = mask.shape
        warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR)
        moved = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST)
        # the transform maps the instance's source onto its copy: about half the instance (a third
        # with two copies, of which the matrix is the first's; rounding at the rescaled edges aside)
        assert (mask & moved).sum() >= mask.sum() / (2 + event.copies) - 2 * np.sqrt(mask.sum()), event
        # the copy's pixels, away from edges and feathering, equal the source's seen through it
        copy = cv2.erode(mask & moved, np.ones((7, 7), np.uint8)).astype(bool)
        if copy.sum() < 20:
            continue
        a, b = image[copy].ravel(), warped[copy].ravel()
        difference = float(np.abs(a - b).mean())
        # JPEG on a heavy texture moves grey levels a lot (a flipped copy meets another block grid),
        # but the copy still follows its source; a misplaced mask would correlate near 0
        correlation = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
        assert difference < 12 or correlation > 0.6, (event.case_id, event.event, difference, correlation)
        checked += 1
    assert checked >= 3


def test_the_group_report_equals_the_metric_image_by_image(bench):
    out, _ = bench
    meta, events = read_meta(out / "meta.csv")
    solution = read_solution(out / "solution.csv")
    # a submission right on some forged rows, `authentic` on the others, and one false positive
    forged_ids = list(solution.loc[solution["annotation"] != AUTHENTIC, "case_id"])
    authentic_ids = list(solution.loc[solution["annotation"] == AUTHENTIC, "case_id"])
    prediction = dict(zip(solution["case_id"], solution["annotation"]))
    for cid in forged_ids[::2]:
        prediction[cid] = AUTHENTIC
    hw = json.loads(solution.set_index("case_id").loc[authentic_ids[0], "shape"])
    prediction[authentic_ids[0]] = rle_encode_instances([np.ones(hw, bool)])     # a false positive
    submission = pd.DataFrame({"case_id": list(prediction), "annotation": list(prediction.values())})
    _, rows = score_frame(solution, submission)
    figures = figure_report(rows, meta)
    test_meta = meta[meta["split"] == "test"].set_index("case_id")
    by_id = solution.set_index("case_id")
    for record in figures.itertuples():
        if record.column in ("jpeg", "rescale", "noise", "size"):
            continue                                                  # binned columns: their groups are ranges
        values = {cid: str(test_meta.loc[cid, record.column]) or "none" for cid in test_meta.index}
        ids = [cid for cid, value in values.items()      # content: a compound figure under each of its kinds
               if (record.group in value.split("+") if record.column == "content" else value == record.group)]
        scores = [score_row(by_id.loc[c, "annotation"], prediction[c], by_id.loc[c, "shape"], c) for c in ids]
        assert record.images == len(ids) and record.score == pytest.approx(np.mean(scores)), record
        forged = [c for c in ids if by_id.loc[c, "annotation"] != AUTHENTIC]
        hits = [c for c in forged if prediction[c] != AUTHENTIC]
        assert record.recall == pytest.approx(len(hits) / len(forged) if forged else 0.0)
    matched = event_matches(rows, events)
    assert matched["found"].tolist() == [prediction[c] != AUTHENTIC for c in matched["case_id"]]
    by_texture = event_report(rows, events).query("column == 'texture_group'")
    assert by_texture["events"].sum() == len(matched) and by_texture["found"].sum() == matched["found"].sum()


def test_the_gallery_shows_the_worst_failures_with_the_matchers_pictures(bench, tmp_path):
    out, _ = bench
    solution = read_solution(out / "solution.csv")
    forged = solution.loc[solution["annotation"] != AUTHENTIC, "case_id"].tolist()
    authentic = solution.loc[solution["annotation"] == AUTHENTIC, "case_id"].tolist()
    prediction = dict(zip(solution["case_id"], solution["annotation"]))
    prediction[forged[0]] = AUTHENTIC                                   # a false negative
    hw = json.loads(solution.set_index("case_id").loc[authentic[0], "shape"])
    prediction[authentic[0]] = rle_encode_instances([np.ones(hw, bool)])   # a false positive
    submission = pd.DataFrame({"case_id": list(prediction), "annotation": list(prediction.values())})
    _, rows = score_frame(solution, submission)
    index = write_gallery(rows, out / "test_images", tmp_path / "gallery", out / "meta.csv")
    page = index.read_text()
    assert "False negatives: forged figures missed or badly segmented (1)" in page
    assert "False positives: authentic figures flagged (1)" in page
    for cid in (forged[0], authentic[0]):
        for folder in ("full", "thumbs", "matcher"):
            assert f"{folder}/{cid}.png" in page and (tmp_path / "gallery" / folder / f"{cid}.png").is_file()
    assert "texture" in page and "jpeg" in page                       # meta and events in the captions


@pytest.mark.slow
def test_validate_test_reports_groups_and_writes_the_gallery(bench, tmp_path, monkeypatch, capsys):
    import logging
    import runpy
    import sys

    from tests.helpers import ROOT
    out, _ = bench
    monkeypatch.setattr(sys, "argv", ["validate_test.py", "--fusion", "matcher",
                                      "--input-dir", str(out / "test_images"),
                                      "--solution", str(out / "solution.csv"), "--meta", str(out / "meta.csv"),
                                      "--gallery", str(tmp_path / "gallery"), "--no-progress",
                                      "--models-dir", str(tmp_path / "models"), "--logs-dir", str(tmp_path / "logs")])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with pytest.raises(SystemExit) as exit_info:               # the script, in this process
            runpy.run_path(str(ROOT / "bin" / "validate_test.py"), run_name="__main__")
    finally:        # its console handler writes to this test's captured stderr: never leave it to the next tests
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    assert exit_info.value.code == 0
    err = capsys.readouterr().err                                      # its log, on the console
    assert "by group:" in err and "texture_group" in err and "event recall" in err
    assert (tmp_path / "gallery" / "index.html").is_file()


def test_candidate_coverage_counts_the_events_some_candidate_covers(bench, tmp_path):
    """The tuning measure of the candidate stages: every event of the drawn forged training
    figures counted once per column; none covered by a matcher without detectors, and at least
    as many covered by the full matcher as by its dense and fine stages alone."""
    from lib.evaluation.matcher import candidate_coverage
    from lib.matching import MatchConfig
    from lib.paths import Paths

    out, _ = bench
    paths = Paths(data_dir=out, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    _, events = read_meta(out / "meta.csv")
    forged_train = events[events["case_id"].isin(
        [p.stem for p in (out / "train_images" / "forged").glob("*.png")])]
    coverage = {}
    for name, config in {"none": MatchConfig(keypoints=False, dense=False, fine=False),
                         "dense": MatchConfig(keypoints=False), "full": MatchConfig()}.items():
        report = candidate_coverage(paths, config, figures=100, workers=1, progress=False)
        area = report[report["column"] == "area_bucket"]
        assert area["events"].sum() == len(forged_train)
        coverage[name] = area["found"].sum()
    assert coverage["none"] == 0 and coverage["full"] >= coverage["dense"] and coverage["full"] > 0


def test_evaluate_matcher_set_reads_values_as_json_and_refuses_unknown_keys():
    from lib.evaluation.matcher import match_config

    config = match_config(["dense_max_grid=512", "fill_hull=false", "dense_method=kdtree"])
    assert (config.dense_max_grid, config.fill_hull, config.dense_method) == (512, False, "kdtree")
    with pytest.raises(Exception, match="--set grid=2: not KEY=VALUE"):
        match_config(["grid=2"])
    with pytest.raises(Exception, match="--set: dense_method must be"):
        match_config(["dense_method=fast"])


@pytest.mark.slow
def test_the_networks_table_chooses_on_validation_and_a_useless_network_costs_nothing(bench, tmp_path):
    """bin/evaluate_networks.py's table: answering authentic scores the authentic share; a random
    network (useless: it marks whole figures) loses to the matcher on the validation split, so its
    fused row is the matcher's row exactly; a self-correlation network gets its maps."""
    import torch

    from lib.evaluation.comparison import AUTHENTIC_ROW, MATCHER_ROW, compare_on_benchmark, run_labels
    from lib.models.checkpoints import save_checkpoint
    from lib.models.networks import build_model
    from lib.paths import Paths
    from tests.helpers import save_tiny_segmenter
    from tests.test_selfcorr import TINY_SELFCORR

    out, _ = bench
    paths = Paths(data_dir=out, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    rgb = save_tiny_segmenter(tmp_path / "rgb_v3_best.safetensors")
    torch.manual_seed(0)
    selfcorr = tmp_path / "selfcorr_v3_best.safetensors"
    save_checkpoint(selfcorr, build_model(TINY_SELFCORR), TINY_SELFCORR, img_size=64, epoch=1)
    table = compare_on_benchmark(paths, [rgb, selfcorr], torch.device("cpu"), progress=False).set_index("system")
    solution = read_solution(out / "solution.csv")
    authentic_share = (solution["annotation"] == AUTHENTIC).mean()
    assert table.loc[AUTHENTIC_ROW, "score"] == pytest.approx(authentic_share)
    assert table.loc[AUTHENTIC_ROW, ["recall", "fp_rate", "pixel_f1"]].tolist() == [0, 0, 0]
    assert list(table.index) == [AUTHENTIC_ROW, MATCHER_ROW, "rgb_v3 alone", "rgb_v3 + matcher", "selfcorr_v3 alone",
                                 "selfcorr_v3 + matcher"]
    assert run_labels([tmp_path / "a" / "x_v3_best.safetensors", tmp_path / "b" / "x_v3_best.safetensors",
                       rgb]) == ["a/x_v3", "b/x_v3", "rgb_v3"]
    assert {f"forged {group}" for group in TEXTURE_GROUPS} <= set(table.columns)
    for name in ("rgb_v3", "selfcorr_v3"):
        assert table.loc[f"{name} + matcher", "chosen on validation"].startswith("fusion matcher")
        fused, matcher = table.loc[f"{name} + matcher"], table.loc[MATCHER_ROW]
        assert fused[["score", "recall", "fp_rate", "pixel_f1"]].tolist() == matcher[
            ["score", "recall", "fp_rate", "pixel_f1"]].tolist()


def test_benchmark_matcher_times_v2_and_v3_on_real_figure_files(bench, tmp_path):
    folder = bench[0] / "test_images"
    result = run_script("benchmark_matcher.py", "--sizes", "96", "--images", "1", "--input-dir", folder, "--every",
                        "8", "--logs-dir", tmp_path / "logs", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = len(sorted(folder.glob("*.png"))[::8])
    assert f"v2 and v3 on {figures} figures of {folder} (every 8-th, one at a time)" in result.stderr
    assert "slowest with v3: " in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run_script("benchmark_matcher.py", "--input-dir", empty, "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert refused.returncode == 1 and "no images found" in refused.stderr
