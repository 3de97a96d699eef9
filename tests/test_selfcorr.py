"""The self-correlation input (lib.inference.selfcorr): maps that mark a copy, that move with the image under
augmentation, that a training run reads from the matcher's cache, and that the predictor computes
the same way at inference."""
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lib.data.augment import MAPS, build_transforms
from lib.data.demo import make_demo_dataset
from lib.errors import DataError, ProjectError
from lib.inference.fusion import MatchCache, MatchOutput, match_file
from lib.inference.infer import Predictor, load_member, reference_probabilities
from lib.inference.selfcorr import SelfCorrSource, normalize_maps, selfcorr_maps
from lib.matching import FIELD_MAPS, MatchConfig, default_verifier, field_maps, find_candidates
from lib.models.networks import check_model_config
from lib.models.variants import SELFCORR_CHANNELS, SELFCORR_INPUTS, V3_VARIANTS, input_channels
from lib.options import TrainOptions
from lib.paths import Paths
from lib.training.datasets import SegmentationDataset
from lib.training.train import train_variant
from tests.helpers import write_png
from tests.test_matching import copy_region, texture

TINY_SELFCORR = {"arch": "attention_fpn", "encoder": "resnet18", "in_channels": 6, "inputs": SELFCORR_INPUTS}


@pytest.mark.parametrize("kind", ["translate", "flip"])
def test_the_field_maps_mark_both_sides_of_a_copy(kind):
    # (PatchMatch propagates under the 8 dihedral moves: a copy rotated by 30 degrees or scaled is
    # not in the field; the keypoints find it, and the candidate channel carries it)
    image, event = copy_region(texture(256, 320, 0), (30, 30), 64, (200, 170), kind)
    result = find_candidates(np.dstack([image] * 3), MatchConfig())
    maps = field_maps(result.dense)
    assert maps.dtype == np.uint8 and maps.shape == (len(FIELD_MAPS), 205, 256)   # longer side 256
    inside = cv2.resize(event.astype(np.uint8), (256, 205), interpolation=cv2.INTER_NEAREST) > 0
    outside = cv2.dilate(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0   # away from its border
    similarity, agreement = (m.astype(np.float32) / 255 for m in maps)
    assert agreement[inside].mean() > 0.6 > 0.15 > agreement[outside].mean()
    assert similarity[inside].mean() > similarity[outside].mean() + 0.3
    assert field_maps(None).shape == (0, 0, 0)


def test_selfcorr_maps_take_the_best_candidate_over_each_pixel():
    hw = (40, 60)
    a, b = np.zeros(hw, bool), np.zeros(hw, bool)
    a[:20, :30] = True
    b[10:30, 20:50] = True
    output = MatchOutput.of(Path("x.png"), hw, [a, b], [0.3, 0.9], dense_maps=np.full((2, 20, 30), 255, np.uint8))
    maps = selfcorr_maps(output, hw)
    assert SELFCORR_CHANNELS == (*FIELD_MAPS, "candidate")     # the variants name the maps the matcher makes
    assert maps.shape == (40, 60, len(SELFCORR_CHANNELS)) and maps.dtype == np.float32
    assert np.allclose(maps[..., :2], 1.0)
    candidate = maps[..., 2]
    assert candidate[5, 5] == pytest.approx(0.3) and candidate[15, 25] == pytest.approx(0.9)
    assert candidate[35, 5] == 0.0 and candidate[25, 45] == pytest.approx(0.9)
    doubled = selfcorr_maps(output, (80, 120))                   # at any size: the image's own
    assert doubled.shape == (80, 120, 3) and doubled[70, 10, 2] == 0.0 and doubled[30, 50, 2] == pytest.approx(0.9)
    for missing in (None, MatchOutput(Path("x.png"), (0, 0), error="unreadable")):
        assert not selfcorr_maps(missing, hw).any()
    without_field = selfcorr_maps(MatchOutput.of(Path("x.png"), hw, [a], [0.5]), hw)
    assert not without_field[..., :2].any() and without_field[..., 2].max() == pytest.approx(0.5)
    tensor = normalize_maps(maps)
    assert tensor.shape == (3, 40, 60) and tensor.min() >= -1 and tensor.max() <= 1


@pytest.mark.parametrize("preset", ["standard", "strong"])
def test_maps_move_with_the_image_and_its_mask(preset):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 200, 3), np.uint8)
    mask = np.zeros((300, 200), np.uint8)
    mask[20:90, 30:80] = 1
    maps = np.repeat(mask[..., None].astype(np.float32), 3, axis=2)
    for seed in range(5):
        out = build_transforms(preset, 64, train=True, seed=seed, maps=True)(image=image, mask=mask, **{MAPS: maps})
        assert out[MAPS].shape == (64, 64, 3)
        for channel in range(3):          # geometry only: no colour, noise or normalisation on the maps
            assert torch.equal(out[MAPS][..., channel], out["mask"].float())


def test_the_variant_and_its_model_config():
    variant = V3_VARIANTS["selfcorr"]
    assert variant.inputs == SELFCORR_INPUTS and variant.model["in_channels"] == input_channels(SELFCORR_INPUTS) == 6
    assert V3_VARIANTS["highres_no_ela"].inputs == "rgb"
    check_model_config(TINY_SELFCORR)
    with pytest.raises(ValueError, match="need in_channels 6"):
        check_model_config({**TINY_SELFCORR, "in_channels": 3})
    with pytest.raises(ValueError, match="unknown inputs"):
        check_model_config({**TINY_SELFCORR, "inputs": "rgb+ela"})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfcorr")
    make_demo_dataset(root / "data", n_forged=10, n_test=2, n_supplemental=0, max_size=192, seed=5)
    return root


@pytest.mark.slow
def test_a_selfcorr_run_trains_on_cached_maps_and_predicts_with_them(demo, caplog):
    paths = Paths(data_dir=demo / "data", models_dir=demo / "models", logs_dir=demo / "logs")
    variant = V3_VARIANTS["selfcorr"].with_overrides(model=TINY_SELFCORR)
    options = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none", limit=8,
                           progress=False)
    with caplog.at_level(logging.INFO):
        result = train_variant(variant, options, paths)
    assert "self-correlation maps" in caplog.text                      # the matcher ran on the images first
    cache = MatchCache(paths.models_dir / "cache", MatchConfig())
    cached = list(cache.folder.glob("*.npz"))
    assert len(cached) >= 8

    member = load_member(result.best_path, torch.device("cpu"))
    assert member.inputs == SELFCORR_INPUTS and member.input_key == "xs64"
    predictor = Predictor([member], workers=0)
    assert predictor.needs_maps
    images = sorted((demo / "data" / "test_images").glob("*.png"))
    with pytest.raises(ProjectError, match="self-correlation"):
        predictor.run(images, progress=False)
    matches = [match_file(p, MatchConfig()) for p in images]
    for m in matches:
        m.scores = [float(s) for s in default_verifier().probabilities(m.features)]
    results = predictor.run(images, progress=False, matches=matches)
    for image, match, got in zip(images, matches, results):
        _, expected = reference_probabilities(predictor, image, match)
        assert np.allclose(got.prob_map.astype(np.float32), expected, atol=2e-3)
    no_maps = Predictor([member], workers=0).key()
    predictor.maps_key = "another verifier"
    assert predictor.key() != no_maps                    # the result cache knows where the maps came from


def test_a_missing_cache_entry_is_one_clear_error(tmp_path):
    image = write_png(tmp_path / "train_images" / "forged" / "1.png", np.zeros((32, 32, 3), np.uint8))
    import pandas as pd
    rows = pd.DataFrame({"image_path": ["train_images/forged/1.png"], "label": [0], "mask_path": [""]})
    source = SelfCorrSource(MatchCache(tmp_path / "cache", MatchConfig()), MatchConfig(), default_verifier())
    dataset = SegmentationDataset(tmp_path, rows, build_transforms("standard", 32, train=False, maps=True), source)
    with pytest.raises(DataError, match=f"{image}: no matcher output"):
        dataset[0]
