"""Data layer: images of every on-disk format, masks, and the cached manifest of the Kaggle layout."""
import logging
import os

import cv2
import numpy as np
import pytest

from lib.data import manifest as data_mod
from lib.data.manifest import group_of, load_manifest
from lib.errors import DataError
from lib.imageio import MAX_PIXELS, find_images, header_size, list_images, load_image, load_mask, read_image_size
from lib.tools.hostile import png_claiming
from lib.paths import Paths
from tests.helpers import box_mask, make_layout, random_rgb, write_png


def paths_for(tmp_path):
    return Paths(data_dir=tmp_path, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")


# --- images ----------------------------------------------------------------------------------

def test_rgb_png_loads_as_rgb_uint8(tmp_path):
    rgb = random_rgb(np.random.default_rng(0), 13, 17)
    image = load_image(write_png(tmp_path / "a.png", rgb))
    assert image.dtype == np.uint8 and np.array_equal(image, rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12 * 9, dtype=np.uint8).reshape(12, 9)
    image = load_image(write_png(tmp_path / "g.png", gray))
    assert image.shape == (12, 9, 3)
    assert all(np.array_equal(image[:, :, c], gray) for c in range(3))


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200                 # red
    rgba[:2, :, 3] = 255               # top half opaque
    image = load_image(write_png(tmp_path / "a.png", rgba))
    assert image.shape == (4, 4, 3)
    assert tuple(image[0, 0]) == (200, 0, 0)
    assert tuple(image[3, 3]) == (255, 255, 255)


def test_16_bit_is_rescaled_to_8_bit(tmp_path):
    wide = np.array([[0, 257, 65535], [32896, 1000, 65000]], np.uint16)
    image = load_image(write_png(tmp_path / "w.png", wide))
    assert image.dtype == np.uint8
    assert image[0, :, 0].tolist() == [0, 1, 255]
    assert image[1, 0, 0] == 128


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"this is not an image", "not a readable image"),
])
def test_unreadable_files_raise_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_image_over_the_pixel_budget_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(100_000, 100_000))       # 69 bytes; decoded it would be 30 GB
    expected = (f"{path}: 100000 x 100000 pixels (10000 megapixels) is over the pixel budget of "
                f"{MAX_PIXELS // 10**6} megapixels (lib/imageio.py MAX_PIXELS)")
    for read in (load_image, read_image_size):
        with pytest.raises(DataError) as err:
            read(path)
        assert str(err.value) == expected
    side = int(MAX_PIXELS ** 0.5)
    assert header_size(path) == (100_000, 100_000)
    (tmp_path / "at.png").write_bytes(png_claiming(side, side))
    assert read_image_size(tmp_path / "at.png") == (side, side)     # at the budget: read


def test_a_float_image_with_an_inf_pixel_keeps_its_range(tmp_path):
    floats = np.full((20, 30), 0.5, np.float32)
    floats[0, 0], floats[1, 1] = np.inf, np.nan
    cv2.imwrite(str(tmp_path / "f.tif"), floats)
    image = load_image(tmp_path / "f.tif")
    assert image[5, 5].tolist() == [128, 128, 128] and image[0, 0].tolist() == [128, 128, 128]


def test_find_images_says_what_it_skips_and_why(tmp_path):
    write_png(tmp_path / "a.png", random_rgb(np.random.default_rng(0), 16, 16))
    os.symlink("a.png", tmp_path / "link.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    os.symlink("loop.png", tmp_path / "loop.png")
    (tmp_path / "dir.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "notes.txt").write_text("not an image name: not listed, not skipped")
    with open(os.path.join(os.fsencode(tmp_path), b"b\xff.png"), "wb") as handle:
        handle.write((tmp_path / "a.png").read_bytes())
    listing = find_images(tmp_path)
    assert [p.name for p in listing.paths] == ["a.png", "link.png"]
    assert listing.skipped == [f"{tmp_path}/b\\xff.png: file name is not UTF-8 (it cannot be a case_id), skipped",
                               f"{tmp_path}/dangling.png: a dangling link, skipped",
                               f"{tmp_path}/dir.png: a folder, not a file, skipped",
                               f"{tmp_path}/loop.png: a link loop, skipped",
                               f"{tmp_path}/pipe.png: not a regular file, skipped"]
    assert list_images(tmp_path) == listing.paths


def test_truncated_png_raises(tmp_path):
    path = write_png(tmp_path / "t.png", random_rgb(np.random.default_rng(1), 64, 64))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="t.png"):
        load_image(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(DataError, match="cannot be read"):
        load_image(tmp_path / "nope.png")


def test_read_image_size_from_png_header_and_other_formats(tmp_path):
    rgb = random_rgb(np.random.default_rng(2), 21, 34)
    assert read_image_size(write_png(tmp_path / "a.png", rgb)) == (21, 34)
    jpg = tmp_path / "a.jpg"
    cv2.imwrite(str(jpg), rgb)
    assert read_image_size(jpg) == (21, 34)


# --- masks -----------------------------------------------------------------------------------

def test_mask_n_h_w_gives_instances_and_union(tmp_path):
    np.save(tmp_path / "m.npy", box_mask(10, 12, (0, 2, 0, 2), (5, 7, 5, 7)))
    masks = load_mask(tmp_path / "m.npy", expected_hw=(10, 12))
    assert masks.count == 2 and masks.shape == (10, 12)
    assert masks.instances.dtype == bool
    assert masks.union.sum() == 8


@pytest.mark.parametrize("array", [
    box_mask(6, 6, (0, 3, 0, 3))[0],                       # (H, W)
    box_mask(6, 6, (0, 3, 0, 3)).astype(bool),             # bool
    box_mask(6, 6, (0, 3, 0, 3)).astype(np.float32),       # float 0/1
    box_mask(6, 6, (0, 3, 0, 3)).astype(np.int64) * 255,   # 0/255
])
def test_mask_formats_are_tolerated(tmp_path, array):
    np.save(tmp_path / "m.npy", array)
    masks = load_mask(tmp_path / "m.npy")
    assert masks.count == 1 and masks.union.sum() == 9


def test_empty_channels_are_dropped(tmp_path):
    array = np.concatenate([box_mask(6, 6, (0, 3, 0, 3)), np.zeros((1, 6, 6), np.uint8)])
    np.save(tmp_path / "m.npy", array)
    assert load_mask(tmp_path / "m.npy").count == 1


@pytest.mark.parametrize("array, message", [
    (np.zeros((1, 2, 6, 6), np.uint8), "must be \\(n, H, W\\) or \\(H, W\\)"),
    (np.zeros(6, np.uint8), "must be"),
    (np.array([["a", "b"]]), "dtype"),
])
def test_bad_mask_arrays_raise(tmp_path, array, message):
    np.save(tmp_path / "m.npy", array)
    with pytest.raises(DataError, match=message):
        load_mask(tmp_path / "m.npy")


def test_mask_shape_mismatch_names_file_and_shapes(tmp_path):
    np.save(tmp_path / "m.npy", box_mask(10, 12, (0, 2, 0, 2)))
    with pytest.raises(DataError, match=r"m.npy: mask shape \(1, 10, 12\) does not match its image"):
        load_mask(tmp_path / "m.npy", expected_hw=(12, 10))


def test_corrupt_npy_raises(tmp_path):
    (tmp_path / "m.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="not a readable .npy"):
        load_mask(tmp_path / "m.npy")


# --- manifest --------------------------------------------------------------------------------

def test_manifest_lists_every_image_with_label_size_area(tmp_path):
    make_layout(tmp_path)
    manifest = load_manifest(paths_for(tmp_path), progress=False)
    by_id = manifest.set_index("image_id")
    assert sorted(by_id.index) == ["authentic/10", "authentic/11", "forged/10", "forged/11",
                                   "forged/12", "supplemental/90"]
    row = by_id.loc["forged/12"]
    assert (row.label, row.height, row.width, row.n_instances) == (1, 64, 74, 2)
    assert row.forged_area == 25 + 100
    assert row.forged_fraction == pytest.approx(125 / (64 * 74))
    assert by_id.loc["authentic/10", "forged_fraction"] == 0.0
    assert by_id.loc["supplemental/90", "forged_fraction"] == 1.0
    # twins share case_id and group: a split must keep them together
    assert by_id.loc["authentic/10", "group"] == by_id.loc["forged/10", "group"] == "10"
    assert (tmp_path / "train_manifest.csv").is_file()


def test_manifest_reports_and_skips_problem_files(tmp_path, caplog):
    make_layout(tmp_path)
    os.remove(tmp_path / "train_masks" / "11.npy")                      # forged without mask
    np.save(tmp_path / "train_masks" / "55.npy", box_mask(5, 5, (0, 1, 0, 1)))   # mask without image
    np.save(tmp_path / "train_masks" / "12.npy", box_mask(10, 10, (0, 1, 0, 1)))  # wrong H, W
    write_png(tmp_path / "train_images" / "forged" / "13.png", random_rgb(np.random.default_rng(0), 8, 8))
    np.save(tmp_path / "train_masks" / "13.npy", np.zeros((1, 8, 8), np.uint8))  # empty mask
    (tmp_path / "train_images" / "authentic" / "14.png").write_bytes(png_claiming(100_000, 100_000))
    os.symlink("gone.png", tmp_path / "train_images" / "authentic" / "15.png")
    with caplog.at_level(logging.WARNING):
        manifest = load_manifest(paths_for(tmp_path), progress=False)
    assert sorted(manifest["image_id"]) == ["authentic/10", "authentic/11", "forged/10", "supplemental/90"]
    text = caplog.text
    assert "11.png: forged image without a mask (skipped)" in text
    assert "55.npy: mask without an image (skipped)" in text
    assert "12.npy: mask shape (1, 10, 10) does not match its image (H, W) = (64, 74)" in text
    assert "13.npy: mask has no forged pixel" in text
    assert "14.png: 100000 x 100000 pixels (10000 megapixels) is over the pixel budget" in text
    assert "15.png: a dangling link, skipped" in text                      # no row: no file to measure
    full = load_manifest(paths_for(tmp_path), progress=False, include_problems=True, report=False)
    assert (full["problem"] != "").sum() == 5


def test_manifest_is_cached_and_rebuilt_only_for_changed_files(tmp_path, monkeypatch):
    make_layout(tmp_path)
    paths = paths_for(tmp_path)
    calls = []
    original = data_mod._measure
    monkeypatch.setattr(data_mod, "_measure", lambda d, row: calls.append(row["image_id"]) or original(d, row))
    first = load_manifest(paths, progress=False)
    assert len(calls) == 6
    stamp = paths.manifest.stat().st_mtime_ns

    calls.clear()
    second = load_manifest(paths, progress=False)
    assert calls == [] and second.equals(first)
    assert paths.manifest.stat().st_mtime_ns == stamp          # unchanged cache is not rewritten

    np.save(tmp_path / "train_masks" / "10.npy", box_mask(40, 50, (0, 10, 0, 10)))
    calls.clear()
    third = load_manifest(paths, progress=False)
    assert calls == ["forged/10"]
    assert third.set_index("image_id").loc["forged/10", "forged_area"] == 100


def test_manifest_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no usable training image"):
        load_manifest(paths_for(tmp_path), progress=False)


def test_group_strips_augmentation_suffix():
    assert group_of("123") == "123"
    assert group_of("123_aug4") == "123"
    assert group_of("123_aug0_strong") == "123"


def test_a_folder_without_data_gets_an_error_and_no_manifest_cache(tmp_path):
    """inspect_data.py --data-dir demo before the demo exists: one line, and demo/ stays absent
    (a cache written there made full_pipeline --demo refuse the 'non-empty' folder)."""
    paths = Paths(data_dir=tmp_path / "demo", models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    with pytest.raises(DataError, match="no usable training image found"):
        load_manifest(paths, progress=False)
    assert not paths.data_dir.exists()


def test_no_training_data_here_names_where_it_is(tmp_path, monkeypatch):
    import lib.paths
    make_layout(tmp_path / "repo" / "demo")
    monkeypatch.setattr(data_mod, "ROOT", tmp_path / "repo")
    monkeypatch.setattr(lib.paths, "ROOT", tmp_path / "repo")
    paths = Paths(data_dir=tmp_path / "repo", models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    with pytest.raises(DataError, match=r"no usable training image found \(expected .*\); training data is in "
                                        r"demo/: pass --data-dir demo$"):
        load_manifest(paths, progress=False)
