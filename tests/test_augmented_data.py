"""Phase 0's augmented copies and the specialist's crops: masks move with their images under every
geometric transform, crops keep the forgery, copies stay out of validation, runs are reproducible."""
import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest

from lib.data.augment import AUTHENTIC_PRESETS, forged_copy_transforms
from lib.data.augmented_data import Copy, _make_copy, generate_authentic, generate_forged, parse_strengths
from lib.data.manifest import load_manifest
from lib.data.split import load_or_make_split, split_rows
from lib.errors import ProjectError
from lib.imageio import load_image, load_mask
from lib.models.variants import SmallForgeries
from lib.paths import Paths
from lib.training.datasets import CropAroundForgeryDataset, crop_sheet, crop_window, forged_region_box
from tests.helpers import write_png

GEOMETRIC = (A.HorizontalFlip, A.VerticalFlip, A.RandomRotate90, A.Rotate, A.RandomResizedCrop, A.RandomScale,
             A.Affine, A.Perspective)


def _geometric(transforms):
    """Every geometric transform inside a list of transforms and OneOfs."""
    for t in transforms:
        if isinstance(t, A.OneOf):
            yield from _geometric(t.transforms)
        elif isinstance(t, GEOMETRIC):
            yield t


def _marked_image(h=120, w=160):
    """A dark image with two bright markers (asymmetric, so a wrong flip shows), and their masks
    as two instances."""
    image = np.full((h, w, 3), 20, np.uint8)
    masks = np.zeros((2, h, w), np.uint8)
    for k, (y, x) in enumerate(((20, 30), (70, 120))):
        image[y:y + 9, x:x + 9] = 255
        masks[k, y:y + 9, x:x + 9] = 1
    return image, masks


def _centroid(binary):
    ys, xs = np.nonzero(binary)
    return np.array([ys.mean(), xs.mean()])


@pytest.mark.parametrize("transform", list(_geometric(forged_copy_transforms(120, 160))) +
                         list(_geometric(AUTHENTIC_PRESETS["strong"]())), ids=lambda t: type(t).__name__)
def test_each_geometric_transform_moves_masks_with_the_image(transform):
    image, masks = _marked_image()
    for seed in range(5):
        out = A.Compose([transform], seed=seed)(image=image, masks=list(masks))
        for mask in out["masks"]:
            mask = np.asarray(mask)
            if not mask.any():
                continue                     # cropped away: the generator skips or drops it
            bright = (out["image"].max(axis=2) > 128) & (cv2.dilate(mask, np.ones((7, 7), np.uint8)) > 0)
            assert bright.any(), f"{type(transform).__name__}: no bright marker under the moved mask"
            assert np.abs(_centroid(bright) - _centroid(mask)).max() <= 1.5


def _layout(data_dir, n=10, size=(120, 160)):
    """n forged images with the two markers (one forged image in two is a twin of an authentic one)."""
    image, masks = _marked_image(*size)
    rng = np.random.default_rng(0)
    for i in range(n):
        noisy = np.clip(image.astype(int) + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
        write_png(data_dir / "train_images" / "forged" / f"{100 + i}.png", noisy)
        (data_dir / "train_masks").mkdir(parents=True, exist_ok=True)
        np.save(data_dir / "train_masks" / f"{100 + i}.npy", masks)
        write_png(data_dir / "train_images" / "authentic" / f"{200 + i}.png", noisy)
    return Paths(data_dir, data_dir / "models", data_dir / "logs")


@pytest.fixture()
def paths(tmp_path):
    return _layout(tmp_path / "data")


def test_forged_copies_keep_instances_aligned_and_separate(paths):
    report = generate_forged(paths, copies=3, seed=1, workers=2, progress=False)
    manifest = load_manifest(paths, progress=False)
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    originals = int((train_rows["source"] == "forged").sum())
    assert report.originals == originals and report.held_out == int((val_rows["source"] == "forged").sum())
    assert report.counts["written"] + report.counts["cropped"] == 3 * originals
    copies = sorted((paths.data_dir / "train_images" / "forged_augmented").glob("*.png"))
    assert len(copies) == report.counts["written"] > 0
    for image_path in copies:
        assert image_path.stem.split("_aug")[1] in {"0", "1", "2"}
        image = load_image(image_path)
        masks = load_mask(paths.data_dir / "train_masks_augmented" / f"{image_path.stem}.npy",
                          expected_hw=image.shape[:2])
        assert 1 <= masks.count <= 2                    # instances stay separate channels
        for mask in masks.instances:
            bright = (image.max(axis=2) > 128) & (cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
            assert np.abs(_centroid(bright) - _centroid(mask)).max() <= 1.5, image_path.name
    # the manifest picks the copies up, in their parents' groups, and never in validation
    manifest = load_manifest(paths, progress=False)
    copies = manifest[manifest["source"] == "forged_augmented"]
    assert len(copies) == report.counts["written"]
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    assert not val_rows["augmented"].any()
    assert not set(train_rows["group"]) & set(val_rows["group"])


def test_copies_are_reproducible_resumable_and_independent_of_workers(tmp_path):
    one, two = _layout(tmp_path / "one"), _layout(tmp_path / "two")
    generate_forged(one, copies=2, seed=5, workers=1, progress=False)
    generate_forged(two, copies=2, seed=5, workers=3, progress=False)
    names = sorted(p.name for p in (one.data_dir / "train_images" / "forged_augmented").glob("*"))
    assert names == sorted(p.name for p in (two.data_dir / "train_images" / "forged_augmented").glob("*"))
    for name in names:
        a = one.data_dir / "train_images" / "forged_augmented" / name
        assert a.read_bytes() == (two.data_dir / "train_images" / "forged_augmented" / name).read_bytes()
    again = generate_forged(one, copies=2, seed=5, progress=False)
    assert again.counts["written"] == 0 and again.counts["existing"] == len(names)


def test_a_copy_whose_forgery_is_cropped_away_is_skipped(paths):
    image_path = paths.data_dir / "train_images" / "forged" / "100.png"
    out = paths.data_dir / "out"
    out.mkdir()
    # a crop of the corner with no marker in it: the forgery is gone
    job = Copy(image_path, paths.data_dir / "train_masks" / "100.npy", "100_aug0", 0,
               lambda h, w: [A.Crop(x_min=0, y_min=100, x_max=20, y_max=120)])
    result = _make_copy(job, out, out, overwrite=False, keep_sample=False)
    assert result.status == "cropped" and not list(out.iterdir())
    # a crop keeping one of the two instances: written, one instance dropped
    job.transforms = lambda h, w: [A.Crop(x_min=0, y_min=0, x_max=60, y_max=60)]
    result = _make_copy(job, out, out, overwrite=False, keep_sample=False)
    assert result.status == "written" and result.dropped_instances == 1
    assert load_mask(out / "100_aug0.npy").count == 1


def test_authentic_copies_cycle_strengths_and_stay_out_of_validation(paths):
    report = generate_authentic(paths, multiplier=4, strengths=["light", "strong"], seed=3, progress=False)
    names = sorted(p.stem for p in (paths.data_dir / "train_images" / "authentic_augmented").glob("*.png"))
    assert len(names) == report.counts["written"] == 4 * report.originals
    assert {n.split("_aug")[1] for n in names} == {"0_light", "1_strong", "2_light", "3_strong"}
    manifest = load_manifest(paths, progress=False)
    train_rows, val_rows = split_rows(manifest, load_or_make_split(paths, manifest))
    augmented_groups = set(manifest.loc[manifest["source"] == "authentic_augmented", "group"])
    assert augmented_groups <= set(train_rows["group"]) and not augmented_groups & set(val_rows["group"])
    assert len(val_rows) and not val_rows["augmented"].any()


def test_bad_generation_arguments_are_clear(paths):
    with pytest.raises(ProjectError, match="--strengths.*light, medium, strong"):
        parse_strengths("light,extreme")
    with pytest.raises(ProjectError, match="--copies 0"):
        generate_forged(paths, copies=0, progress=False)
    with pytest.raises(ProjectError, match="--copies 0"):
        generate_authentic(paths, multiplier=0, progress=False)


# --- the specialist's crop-around-forgery ----------------------------------------------------

def test_crop_window_always_holds_the_box_and_stays_in_the_image():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        h, w = rng.integers(20, 400, 2)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
        side = rng.uniform(1, 600)
        wy0, wy1, wx0, wx1 = crop_window((y0, y1, x0, x1), (h, w), side)
        assert 0 <= wy0 <= y0 and y1 <= wy1 <= h and 0 <= wx0 <= x0 and x1 <= wx1 <= w
        assert wy1 - wy0 == min(h, max(round(side), y1 - y0))


def test_crop_around_forgery_keeps_a_whole_region_and_zooms_in(tmp_path):
    h, w = 600, 800
    image = np.full((h, w, 3), 90, np.uint8)
    masks = np.zeros((2, h, w), np.uint8)
    masks[0, 50:60, 40:52] = masks[0, 500:510, 700:712] = 1   # a pair far apart: source and copy
    masks[1, 300:316, 400:410] = 1
    write_png(tmp_path / "train_images" / "forged" / "1.png", image)
    (tmp_path / "train_masks").mkdir()
    np.save(tmp_path / "train_masks" / "1.npy", masks)
    rows = pd.DataFrame({"image_path": ["train_images/forged/1.png"], "label": [1], "mask_path": ["train_masks/1.npy"]})
    small = SmallForgeries(crop_probability=1.0)
    dataset = CropAroundForgeryDataset(tmp_path, rows, transform=None, small=small)
    np.random.seed(0)
    components = [(50, 60, 40, 52), (500, 510, 700, 712), (300, 316, 400, 410)]
    for _ in range(200):
        crop, mask = dataset.crop(0)
        assert crop.shape[:2] == mask.shape == (small.min_crop, small.min_crop)   # 4x a 16 px region < 128
        # some region is whole inside: its area is all there
        assert any(mask.sum() >= (y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in components)
        assert mask.mean() > 5 * masks.any(axis=0).mean()          # the forgery fills far more of the crop
    np.random.seed(1)
    for _ in range(50):
        box = forged_region_box(masks)
        assert box in components


def test_crop_sheet_draws_crops(tmp_path):
    paths = _layout(tmp_path / "data", n=3, size=(300, 400))
    manifest = load_manifest(paths, progress=False)
    dataset = CropAroundForgeryDataset(paths.data_dir, manifest[manifest["label"] == 1].reset_index(drop=True),
                                       None, SmallForgeries(crop_probability=1.0))
    sheet = crop_sheet(dataset, count=3, seed=0, columns=3)
    assert sheet.ndim == 3 and sheet.shape[2] == 3 and sheet.shape[1] == 3 * (256 + 8)
    state = np.random.get_state()[1].copy()
    crop_sheet(dataset, count=3, seed=0, columns=3)
    assert (np.random.get_state()[1] == state).all()                # the global generator is left alone


def test_training_uses_the_copies_unless_told_not_to(paths):
    from lib.models.variants import V3_VARIANTS
    from lib.options import TrainOptions
    from lib.training.train import training_rows

    generate_forged(paths, copies=1, progress=False)
    generate_authentic(paths, multiplier=1, progress=False)
    variant = V3_VARIANTS["highres_no_ela"]
    with_copies, val = training_rows(variant, TrainOptions(progress=False), paths)
    without, _ = training_rows(variant, TrainOptions(progress=False, use_augmented=False), paths)
    assert with_copies["augmented"].sum() > 0 and not without["augmented"].any()
    assert len(with_copies) - len(without) == with_copies["augmented"].sum()
    assert not val["augmented"].any()


def test_the_flags_name_the_authentic_presets():
    from lib.options import AUTHENTIC_STRENGTHS  # what --strengths offers without importing albumentations
    assert tuple(AUTHENTIC_PRESETS) == AUTHENTIC_STRENGTHS
