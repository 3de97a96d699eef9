"""Augmentation presets, datasets, sample weights, the sampler and the hard-negative file."""
import pickle
import warnings

import albumentations as A
import numpy as np
import pandas as pd
import pytest
import torch

from lib.data.augment import AUGMENT_PRESETS, IMAGENET_MEAN, IMAGENET_STD, build_transforms, compose
from lib.data.manifest import load_manifest
from lib.errors import DataError
from lib.paths import Paths
from lib.training.datasets import (ClassifierDataset, SampleWeights, SegmentationDataset, make_sampler,
                                   read_hard_negatives, sample_weights, write_hard_negatives)
from tests.helpers import box_mask, random_rgb, write_png

SIZE = 64
PRESETS = sorted(AUGMENT_PRESETS)


def square_scene(h=96, w=128, box=(15, 55, 20, 70)):
    """A black RGB image with one white off-centre rectangle, and that rectangle as the mask."""
    image = np.zeros((h, w, 3), np.uint8)
    mask = box_mask(h, w, box)[0]
    image[mask.astype(bool)] = 255
    return image, mask


def gray_of(tensor: torch.Tensor) -> np.ndarray:
    """Undo the ImageNet normalisation of a (3, H, W) tensor and return its mean channel in 0..255."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((tensor * std + mean) * 255).mean(0).numpy()


# --- augment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("train", [True, False])
def test_presets_build_without_warnings_and_give_tensors(preset, train):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transform = build_transforms(preset, SIZE, train=train, seed=0)
        image, mask = square_scene()
        out = transform(image=image, mask=mask)
    assert out["image"].shape == (3, SIZE, SIZE) and out["image"].dtype == torch.float32
    assert out["mask"].shape == (SIZE, SIZE)
    assert set(torch.unique(out["mask"]).tolist()) <= {0, 1}


@pytest.mark.parametrize("preset", PRESETS)
def test_mask_follows_the_image_through_random_training_transforms(preset):
    image, mask = square_scene()
    transform = build_transforms(preset, SIZE, train=True, seed=123)
    for _ in range(8):
        out = transform(image=image, mask=mask)
        gray = gray_of(out["image"])
        # colour transforms may darken the square a lot: threshold halfway between dark and bright
        bright = gray > (np.percentile(gray, 1) + np.percentile(gray, 99)) / 2
        moved = out["mask"].numpy().astype(bool)
        iou = (bright & moved).sum() / max((bright | moved).sum(), 1)
        assert moved.any() and iou > 0.75, iou   # a mask left in place scores about 0


def test_horizontal_flip_moves_the_mask_with_the_image():
    image, mask = square_scene()
    out = compose([A.HorizontalFlip(p=1.0)])(image=image, mask=mask)
    assert np.array_equal(out["mask"].numpy(), mask[:, ::-1])
    assert np.array_equal(gray_of(out["image"]) > 128, mask[:, ::-1].astype(bool))


def test_validation_transform_is_a_deterministic_resize():
    image = random_rgb(np.random.default_rng(0), 100, 150)
    transform = build_transforms("strong", SIZE, train=False)
    first, second = transform(image=image)["image"], transform(image=image)["image"]
    assert torch.equal(first, second)
    _, mask = square_scene(128, 128, (32, 96, 0, 64))
    out = transform(image=np.zeros((128, 128, 3), np.uint8), mask=mask)["mask"].numpy()
    assert np.array_equal(out, mask[::2, ::2])   # nearest neighbour: exact at a factor of 2


def test_unknown_preset_lists_the_known_ones():
    known = "standard, strong, light, no_crop"
    with pytest.raises(ValueError, match=f"unknown augmentation preset 'heavy'; known: {known}"):
        build_transforms("heavy", SIZE, train=True)
    with pytest.raises(ValueError, match="img_size"):
        build_transforms("standard", 0, train=True)


# --- datasets --------------------------------------------------------------------------------

@pytest.fixture
def layout(tmp_path):
    """A forged image with two instances and its authentic twin; returns (data_dir, manifest)."""
    rng = np.random.default_rng(0)
    write_png(tmp_path / "train_images/forged/20.png", random_rgb(rng, 60, 80))
    write_png(tmp_path / "train_images/authentic/20.png", random_rgb(rng, 60, 80))
    (tmp_path / "train_masks").mkdir()
    np.save(tmp_path / "train_masks/20.npy", box_mask(60, 80, (0, 20, 0, 30), (30, 50, 40, 70)))
    paths = Paths(data_dir=tmp_path, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    return tmp_path, load_manifest(paths, progress=False)


def test_segmentation_dataset_gives_the_union_mask_or_zeros(layout):
    data_dir, manifest = layout
    dataset = SegmentationDataset(data_dir, manifest, build_transforms("standard", 32, train=False))
    assert len(dataset) == 2
    by_id = dict(zip(manifest["image_id"], range(len(manifest))))
    image, mask = dataset[by_id["forged/20"]]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}
    fraction = manifest.set_index("image_id").loc["forged/20", "forged_fraction"]
    assert fraction == pytest.approx((600 + 600) / 4800)
    assert mask.mean().item() == pytest.approx(fraction, abs=0.02)
    _, mask = dataset[by_id["authentic/20"]]
    assert mask.shape == (1, 32, 32) and not mask.any()


def test_an_unreadable_item_is_said_once_and_another_of_its_label_takes_its_place(layout, caplog):
    data_dir, manifest = layout
    dataset = SegmentationDataset(data_dir, manifest, build_transforms("standard", 32, train=False))
    index = manifest.index[manifest["image_id"] == "forged/20"][0]
    labels = manifest["label"].tolist()
    after = [i % len(labels) for i in range(index + 1, index + len(labels))]     # wrapping
    same = [i for i in after if labels[i] == labels[index]]
    standing_in = same[0] if same else after[0]       # the next of its label, else the next one
    (data_dir / "train_images/forged/20.png").unlink()
    with pytest.raises(DataError, match="forged/20.png"):
        dataset._item(index)
    for _ in range(2):                                 # said once, however often it is drawn
        x, y = dataset[index]
        assert torch.equal(x, dataset[standing_in][0]) and torch.equal(y, dataset[standing_in][1])
    said = [r.getMessage() for r in caplog.records if "forged/20.png" in r.getMessage()]
    assert len(said) == 1 and "another image in its place" in said[0]
    write_png(data_dir / "train_images/forged/20.png", random_rgb(np.random.default_rng(1), 60, 80))
    np.save(data_dir / "train_masks/20.npy", box_mask(61, 80, (0, 5, 0, 5)))
    with pytest.raises(DataError, match="20.npy: mask shape"):
        SegmentationDataset(data_dir, manifest, dataset.transform)._item(index)
    with pytest.raises(ValueError, match="mask_path"):
        SegmentationDataset(data_dir, manifest.drop(columns="mask_path"), dataset.transform)


def test_classifier_dataset_gives_labels_and_pickles(layout):
    data_dir, manifest = layout
    dataset = ClassifierDataset(data_dir, manifest, build_transforms("standard", 32, train=False))
    items = [dataset[i] for i in range(len(dataset))]
    assert [label.item() for _, label in items] == manifest["label"].astype(float).tolist()
    assert all(label.dtype == torch.float32 and label.shape == () for _, label in items)
    copy = pickle.loads(pickle.dumps(dataset))   # what DataLoader workers receive
    assert torch.equal(copy[0][0], items[0][0])


# --- sample weights and sampler ---------------------------------------------------------------

def weight_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "image_id": ["forged/1", "forged/2", "forged/3", "authentic/4", "authentic/5"],
        "label": [1, 1, 1, 0, 0],
        "forged_fraction": [0.005, 0.02, 0.2, 0.0, 0.0],
    })


def test_sample_weights_by_area_and_hard_negatives():
    weights = sample_weights(weight_rows(), SampleWeights(), {"authentic/5", "forged/3"})
    assert weights.dtype == np.float64
    assert weights.tolist() == [3.0, 2.0, 1.0, 1.0, 5.0]   # a forged id in the set changes nothing
    assert sample_weights(weight_rows(), SampleWeights()).tolist() == [3.0, 2.0, 1.0, 1.0, 1.0]


def test_sample_weights_are_configurable():
    custom = SampleWeights(tiny=7, medium=6, large=4, authentic=0.5, hard_negative=9,
                           tiny_below=0.001, medium_below=0.1)
    assert sample_weights(weight_rows(), custom, {"authentic/5"}).tolist() == [6, 6, 4, 0.5, 9]
    with pytest.raises(ValueError, match=">= 0"):
        sample_weights(weight_rows(), SampleWeights(tiny=-1))


def test_sampler_draws_in_proportion_and_is_reproducible():
    weights = sample_weights(weight_rows().iloc[3:], SampleWeights(), {"authentic/5"})
    weights = np.concatenate([[1.0, 1.0, 1.0], weights])        # four weight-1 rows, one hard negative
    draws = np.array(list(make_sampler(np.tile(weights, 9000), seed=0))) % 5    # 45,000 draws
    counts = np.bincount(draws, minlength=5)
    assert counts[4] / counts[:4].mean() == pytest.approx(5.0, rel=0.08)
    assert list(make_sampler(weights, seed=3)) == list(make_sampler(weights, seed=3))
    assert list(make_sampler(np.tile(weights, 40), seed=3)) != list(make_sampler(np.tile(weights, 40), seed=4))
    assert len(make_sampler(weights)) == 5
    with pytest.raises(ValueError, match="not all zero"):
        make_sampler(np.zeros(3))


# --- hard-negative file ----------------------------------------------------------------------

def test_hard_negative_file_round_trip(tmp_path):
    path = tmp_path / "hard_negative_ids.txt"
    write_hard_negatives(path, ["authentic/5", "7", "authentic/30", "7"], header="mined by test\nthreshold 0.5")
    assert path.read_text() == ("# mined by test\n# threshold 0.5\n"
                                "authentic/30\nauthentic/5\nauthentic/7\n")
    assert read_hard_negatives(path) == {"authentic/5", "authentic/7", "authentic/30"}
    with pytest.raises(ValueError, match="one non-empty word"):
        write_hard_negatives(path, ["authentic/1 0.9"])


def test_hard_negative_file_comments_blank_lines_and_bare_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_bytes(b"# header\r\n\r\n  12345  \r\nauthentic_augmented/9_aug1\n   # indented comment\n")
    assert read_hard_negatives(path) == {"authentic/12345", "authentic_augmented/9_aug1"}


def test_hard_negative_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing.txt: hard-negative file not found; "
                                        r"python bin/find_hard_negatives.py makes it"):
        read_hard_negatives(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("authentic/1\nauthentic/2 0.93\n")
    with pytest.raises(DataError, match="bad.txt, line 2: expected one image id"):
        read_hard_negatives(bad)
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="bad.txt: cannot be read"):
        read_hard_negatives(bad)
