"""The two-pass predictor: batched TTA equals the straightforward loop, the union rule, the
classifier gate, the result cache, and instances that score 1.0 on one and two events."""
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.competition.metric import score_row
from lib.competition.submission import annotation_from_instances, read_submission
from lib.inference.infer import Member, Predictor, ResultCache, reference_probabilities, write_predictions
from lib.inference.postprocess import adaptive_threshold, form_instances, postprocess
from lib.models.networks import build_model
from lib.options import PostConfig
from tests.helpers import TINY_SEGMENTER, random_rgb, write_png

TINY_CLASSIFIER = {"arch": "classifier", "encoder": "resnet18", "in_channels": 3}


def member(config, size, weight=1.0, seed=0):
    torch.manual_seed(seed)
    return Member(Path(f"m{seed}.pth"), build_model(config).eval(), size, weight, f"digest{seed}")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    return [write_png(folder / f"{i}.png", random_rgb(rng, h, w))
            for i, (h, w) in enumerate([(70, 90), (64, 64), (100, 52)])]


def predictor(**changes):
    options = dict(segmenters=[member(TINY_SEGMENTER, 64, 1.5, 1), member(TINY_SEGMENTER, 96, 0.8, 2)],
                   classifier=member(TINY_CLASSIFIER, 64, seed=3), specialist=member(TINY_SEGMENTER, 64, seed=4),
                   batch_size=2, workers=0)
    options.update(changes)
    return Predictor(**options)


@pytest.mark.slow
@pytest.mark.parametrize("tta,aggregate,chunk", [(True, "max", None), (True, "mean", 3), (False, "max", None)])
def test_batched_predictor_equals_the_per_image_per_flip_loop(images, tta, aggregate, chunk):
    model = predictor(tta=tta, aggregate=aggregate, forward_chunk=chunk)
    results = model.run(images, progress=False)
    for path, result in zip(images, results):
        cls, prob = reference_probabilities(model, path)
        assert result.prob_map.shape == (96, 96) and result.prob_map.dtype == np.float16
        assert np.abs(result.prob_map.astype(np.float32) - prob).max() < 2e-3   # float16 storage
        assert result.classifier_prob == pytest.approx(cls, abs=1e-5)


@pytest.mark.slow
def test_specialist_joins_by_union(images):
    full = predictor().run(images, progress=False)
    alone = predictor(specialist=None).run(images, progress=False)
    specialist = predictor(segmenters=[member(TINY_SEGMENTER, 64, seed=4)], specialist=None).run(images[:1],
                                                                                                  progress=False)
    # the specialist's own 64 px map, upsampled to the ensemble's 96 px as the predictor does
    upsampled = torch.nn.functional.interpolate(torch.from_numpy(specialist[0].prob_map.astype(np.float32))[None, None],
                                                size=(96, 96), mode="bilinear", align_corners=False)[0, 0].numpy()
    expected = np.maximum(alone[0].prob_map.astype(np.float32), 0.8 * upsampled)
    assert np.abs(full[0].prob_map.astype(np.float32) - expected).max() < 2e-3
    assert (full[0].prob_map >= alone[0].prob_map).all()


@pytest.mark.slow
def test_classifier_gate_skips_pass_two(images):
    model = predictor()
    probs = [r.classifier_prob for r in model.run(images, progress=False)]
    gate = float(np.median(probs))
    gated = model.run(images, gate=gate, progress=False)
    for result, prob in zip(gated, probs):
        assert result.passes_gate(gate) == (prob >= gate)
        assert (result.prob_map is None) == (prob < gate)


def test_cache_hit_gives_identical_results_without_the_network(images, tmp_path, monkeypatch):
    model = predictor()
    cache = ResultCache(tmp_path, model.key())
    first = model.run(images, gate=1.1, cache=cache, progress=False)          # gate above all: no maps
    assert all(r.prob_map is None for r in first)
    full = model.run(images, cache=cache, progress=False)                     # maps now needed: recomputed
    assert all(r.prob_map is not None for r in full)

    def boom(*args, **kwargs):
        raise AssertionError("the network ran on a cache hit")
    monkeypatch.setattr(Predictor, "segment", boom)
    monkeypatch.setattr(Predictor, "classify", boom)
    again = model.run(images, cache=cache, progress=False)
    for a, b in zip(full, again):
        assert np.array_equal(a.prob_map, b.prob_map) and a.classifier_prob == b.classifier_prob
        assert (a.hw, a.brightness, a.error) == (b.hw, b.brightness, b.error)
    assert predictor(aggregate="mean").key() != model.key()
    # a rewritten image is a miss
    rewritten = write_png(images[0], random_rgb(np.random.default_rng(9), 70, 90))
    with pytest.raises(AssertionError, match="network ran"):
        model.run([rewritten], cache=cache, progress=False)


def test_unreadable_image_is_predicted_authentic(tmp_path):
    bad = tmp_path / "images" / "5.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    good = write_png(tmp_path / "images" / "6.png", random_rgb(np.random.default_rng(1), 40, 40))
    results = predictor().run([bad, good], progress=False)
    assert results[0].error and results[0].prob_map is None and not results[1].error
    write_predictions(results, PostConfig(classifier_threshold=0.0, seg_threshold=0.0, min_area=0,
                                          adaptive=False), tmp_path / "sub.csv")
    frame = read_submission(tmp_path / "sub.csv").set_index("case_id")
    assert frame.loc["5", "annotation"] == "authentic" and frame.loc["6", "annotation"] != "authentic"


@pytest.mark.parametrize("base,brightness,expected", [
    (0.35, 30, 0.25), (0.35, 60, 0.30), (0.35, 128, 0.35), (0.35, 220, 0.40),
    (0.15, 30, 0.20), (0.15, 60, 0.25), (0.48, 220, 0.50), (0.35, 50, 0.30), (0.35, 80, 0.35), (0.35, 200, 0.35),
])
def test_adaptive_threshold_follows_the_seed_table(base, brightness, expected):
    assert adaptive_threshold(base, brightness) == pytest.approx(expected)


# --- instance forming against the metric -----------------------------------------------------

def copy_move_image(events, hw=(96, 128), seed=0):
    """A textured image where each (source box, target box) event copies a patch; the GT
    instance of an event is source | target."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.repeat(np.repeat(image[::4, ::4], 4, 0), 4, 1)[:hw[0], :hw[1]])
    truths = []
    for (y0, x0), (y1, x1), side in events:
        image[y1:y1 + side, x1:x1 + side] = image[y0:y0 + side, x0:x0 + side]
        mask = np.zeros(hw, bool)
        mask[y0:y0 + side, x0:x0 + side] = mask[y1:y1 + side, x1:x1 + side] = True
        truths.append(mask)
    return image, truths


def score(instances, truths):
    return score_row(annotation_from_instances(truths), annotation_from_instances(instances),
                     f"[{truths[0].shape[0]}, {truths[0].shape[1]}]")


def test_one_event_scores_one_unless_split():
    image, truths = copy_move_image([((8, 8), (50, 80), 24)])
    prob = truths[0].astype(np.float32)
    config = PostConfig(seg_threshold=0.5, min_area=10, adaptive=False)
    assert score(postprocess(prob, prob.shape, 128.0, config), truths) == 1.0
    assert score(form_instances(prob > 0.5, "similar", image), truths) == 1.0
    # source and copy apart: each half has F1 2/3 with the event, one is matched, and the
    # excess-prediction penalty 1/2 applies: 1/3
    assert score(form_instances(prob > 0.5, "components", image), truths) == pytest.approx(1 / 3)


def test_two_events_are_grouped_by_similarity():
    image, truths = copy_move_image([((4, 4), (60, 90), 20), ((4, 60), (60, 40), 16)], seed=3)
    mask = np.any(truths, axis=0)
    assert score(form_instances(mask, "similar", image), truths) == 1.0
    # 'all' as one instance: matched to one event (F1 2*400/(400+912) = 0.6098), the other
    # event unmatched (0), mean over the two true instances
    assert score(form_instances(mask, "all"), truths) == pytest.approx((2 * 800 / (800 + 1312)) / 2)
    # one per region: 4 predictions for 2 events, each event half covered
    assert score(form_instances(mask, "components"), truths) < 0.5


@pytest.mark.slow
def test_an_interrupted_prediction_writes_no_csv_and_its_cache_serves_the_rerun(images, tmp_path, monkeypatch):
    model = predictor(batch_size=1)
    cache = ResultCache(tmp_path / "cache", model.key())
    real_segment, calls = Predictor.segment, []

    def killed_on_the_third_image(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_segment(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "segment", killed_on_the_third_image)
    output = tmp_path / "submission.csv"
    with pytest.raises(KeyboardInterrupt):
        write_predictions(model.run(images, cache=cache, progress=False), PostConfig(), output)
    assert not output.exists() and not list(tmp_path.glob("*.tmp*"))     # nothing half-written
    assert len(list(cache.folder.glob("*.npz"))) == 2                      # the two finished images are kept
    monkeypatch.setattr(Predictor, "segment", real_segment)
    computed, real_compute = [], Predictor._compute

    def counting(self, paths, *args, **kwargs):
        computed.extend(paths)
        return real_compute(self, paths, *args, **kwargs)

    monkeypatch.setattr(Predictor, "_compute", counting)
    results = model.run(images, cache=cache, progress=False)
    assert computed == [images[2]]                                         # only the unfinished one runs
    write_predictions(results, PostConfig(), output)
    assert len(read_submission(output)) == 3


def test_a_checkpoint_trained_on_other_normalisation_is_refused(tmp_path):
    """The checkpoint records the normalisation its network was trained on; the predictor reads
    it back and refuses a network it would feed wrong inputs (ImageNet's is what it feeds)."""
    from lib.data.augment import IMAGENET_MEAN, IMAGENET_STD
    from lib.errors import ProjectError
    from lib.inference.infer import load_member
    from tests.helpers import changed_checkpoint, save_tiny_segmenter

    source = save_tiny_segmenter(tmp_path / "net_best.safetensors")
    imagenet = changed_checkpoint(source, tmp_path / "imagenet_best.safetensors",
                                  normalization={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    assert load_member(imagenet, torch.device("cpu")).img_size == 64
    assert load_member(source, torch.device("cpu")).img_size == 64             # older checkpoints: no record
    other = changed_checkpoint(source, tmp_path / "other_best.safetensors",
                               normalization={"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    with pytest.raises(ProjectError, match="other_best.safetensors: trained on inputs normalised with"):
        load_member(other, torch.device("cpu"))
