"""The matcher as a pipeline member: fusion rules, the gate bypass, the cache, parallel runs
equal serial ones, the sweep with the matcher equals post-processing image by image, and
bin/match_copy_move.py end to end (submission, debug pictures, unreadable files)."""
from pathlib import Path

import numpy as np
import pytest

from lib.competition.submission import read_submission, validate_submission_file
from lib.evaluation.evaluate import compare_fusions, evaluate, sweep
from lib.inference.fusion import MatchCache, MatchOutput, fuse, run_matcher
from lib.inference.infer import ImageResult, result_instances
from lib.matching import MatchConfig, match_image
from lib.options import PostConfig
from tests.helpers import run_script, write_png
from tests.test_evaluate import HW, matched_case, square
from tests.test_matching import copy_region, texture


def test_fusion_rules():
    net_a, net_b = square(5, 5, 10), square(60, 60, 10)         # two network regions
    network = [net_a | net_b]
    matched = [square(0, 0, 12) | square(40, 0, 12)]           # one matched event touching net_a
    assert fuse(network, matched, "network") == network
    assert fuse(network, matched, "matcher") == matched
    assert fuse(network, matched, "first") == matched
    assert fuse(network, [], "first") == network
    union = fuse(network, matched, "union")
    assert len(union) == 2
    assert np.array_equal(union[0], matched[0] | net_a)        # the touching region joins the event
    assert np.array_equal(union[1], net_b)                     # the other is one more instance
    assert fuse([], matched, "union")[0].sum() == matched[0].sum()
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(network, matched, "both")


def test_matcher_instances_bypass_the_gate_and_respect_their_threshold():
    prob = np.zeros(HW, np.float16)
    prob[5:15, 5:15] = 0.9
    match = MatchOutput.of(Path("x.png"), HW, [square(50, 50, 10), square(70, 10, 10)], [0.97, 0.80])
    gated = ImageResult(Path("x.png"), HW, 128.0, 0.01, prob, match=match)   # classifier says authentic
    assert result_instances(gated, PostConfig(fusion="network")) == []
    kept = result_instances(gated, PostConfig(fusion="union", matcher_threshold=0.9))
    assert len(kept) == 1 and kept[0].sum() == 100
    assert len(result_instances(gated, PostConfig(fusion="matcher", matcher_threshold=0.75))) == 2
    match.threshold = 0.9                                       # the verifier's own, when none is given
    assert len(result_instances(gated, PostConfig(fusion="matcher"))) == 1
    with pytest.raises(Exception, match="needs the matcher"):
        result_instances(ImageResult(Path("y.png"), HW, 128.0, 0.5, prob), PostConfig(fusion="first"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("match")
    forged, event = copy_region(texture(200, 260, 0), (20, 20), 56, (190, 140), "translate")
    write_png(folder / "1.png", np.dstack([forged] * 3))
    write_png(folder / "2.png", np.dstack([texture(180, 220, 4)] * 3))
    (folder / "3.png").write_bytes(b"not an image")
    return folder, event


def test_cache_round_trip_and_parallel_equals_serial(images, tmp_path):
    folder, event = images
    paths = sorted(folder.glob("*.png"))
    config = MatchConfig()
    cache = MatchCache(tmp_path, config)
    serial = run_matcher(paths, config, cache, workers=1, progress=False)
    assert [len(o.above(o.threshold)) for o in serial] == [1, 0, 0] and serial[2].error
    assert serial[0].best > 0.9
    parallel = run_matcher(paths, config, None, workers=2, progress=False)
    cached = run_matcher(paths, config, cache, workers=1, progress=False)
    for other in (parallel, cached):
        assert [s for o in other for s in o.scores] == pytest.approx([s for o in serial for s in o.scores])
        assert [len(o.scores) for o in other] == [len(o.scores) for o in serial]
        assert all(np.array_equal(o.packed, p.packed) and np.array_equal(o.features, p.features)
                   for o, p in zip(serial, other))
    assert len(list(cache.folder.glob("*.npz"))) == 2       # unreadable images are not cached
    assert MatchCache(tmp_path, MatchConfig(dense=False)).folder != cache.folder


def test_sweep_with_the_matcher_equals_evaluation_image_by_image():
    results, truths = matched_case(1)
    for fusion in ("first", "matcher"):
        table = sweep(results, truths, PostConfig(adaptive=True, fusion=fusion), progress=False)
        assert len(table) == (7 * 216 if fusion == "first" else 7)
        for row in table.sample(n=min(20, len(table)), random_state=0).itertuples():
            base = PostConfig(fusion=fusion, matcher_threshold=row.matcher_threshold)
            if fusion == "first":
                base = PostConfig(row.classifier_threshold, row.seg_threshold, int(row.min_area), fusion=fusion,
                                  matcher_threshold=row.matcher_threshold)
            report, _ = evaluate(results, truths, base)
            assert row.score == pytest.approx(report.score, abs=1e-12)
            assert (row.tp, row.fp, row.fn, row.tn) == (report.tp, report.fp, report.fn, report.tn)
    with pytest.raises(Exception, match="union"):
        sweep(results, truths, PostConfig(fusion="union"), progress=False)
    table = compare_fusions(results, truths, PostConfig())
    assert list(table["fusion"]) == ["network", "matcher", "first", "union"]


@pytest.mark.slow
def test_match_copy_move_script(images, tmp_path):
    folder, _ = images
    output, debug = tmp_path / "sub.csv", tmp_path / "debug"
    result = run_script("match_copy_move.py", "--input-dir", folder, "--output", output, "--debug-dir", debug,
                        "--models-dir", tmp_path / "models", "--logs-dir", tmp_path / "logs", "--no-progress",
                        "--match-workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert validate_submission_file(output, test_dir=folder) == []
    rows = read_submission(output).set_index("case_id")["annotation"]
    assert rows["1"] != "authentic" and rows["2"] == "authentic" and rows["3"] == "authentic"
    assert "3.png: not a readable image (truncated, corrupt or not an image); no match, its row: authentic" \
        in result.stderr
    assert sorted(p.name for p in debug.glob("*.png")) == ["1.png", "2.png"]
    bad = run_script("match_copy_move.py", "--input-dir", folder, "--output", tmp_path / "never.csv",
                     "--matcher-threshold", "2", "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and not (tmp_path / "never.csv").exists()


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (10, 10), (4, 500), (1, 3000), (700, 12)])
def test_images_too_small_for_any_patch_get_no_instance_not_an_error(shape):
    # the dense field's 13 px patches do not fit: its stage is skipped, the others run
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3)).astype(np.uint8)
    for config in (MatchConfig(), MatchConfig.v2(), MatchConfig.cascade()):
        assert match_image(image, config).instances == []
