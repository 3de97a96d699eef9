"""The synthetic demo dataset: Kaggle layout, the one-channel-per-event mask convention,
twins, solution.csv, determinism, and bin/make_demo_data.py."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.competition.rle import rle_decode_instances
from lib.data import demo
from tests.helpers import run_script

SMALL = dict(min_size=128, max_size=320, progress=False)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path}: unreadable"
    return image


def _ids(folder: Path, suffix: str) -> set[str]:
    return {p.stem for p in folder.glob(f"*{suffix}")}


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 forged training images (10 twins), 2 supplemental, 8 test images (4 forged), no JPEG."""
    out = tmp_path_factory.mktemp("demo")
    demo.make_demo_dataset(out, n_forged=12, twin_fraction=0.85, n_test=8, test_forged_fraction=0.5,
                           n_supplemental=2, seed=3, jpeg_prob=0.0, **SMALL)
    return out


def _forge_samples(n_seeds: int = 40):
    """(content, masks, events, panels) of forged figures drawn straight from lib.data.demo."""
    for seed in range(n_seeds):
        rng = np.random.default_rng([11, seed])
        h, w = (int(s) for s in rng.integers(160, 400, 2))
        figure = demo.draw_figure(rng, h, w)
        forged, masks, events = demo.forge(rng, figure.content, figure.panels, int(rng.integers(1, 4)))
        yield figure.content, forged, masks, events, figure.panels


def test_layout(dataset: Path) -> None:
    forged = _ids(dataset / "train_images/forged", ".png")
    assert len(forged) == 12
    assert _ids(dataset / "train_masks", ".npy") == forged
    twins = _ids(dataset / "train_images/authentic", ".png")
    assert len(twins) == 10 and twins <= forged
    supplemental = _ids(dataset / "supplemental_images", ".png")
    assert len(supplemental) == 2 and _ids(dataset / "supplemental_masks", ".npy") == supplemental
    assert len(_ids(dataset / "test_images", ".png")) == 8
    assert (dataset / "solution.csv").is_file() and (dataset / "sample_submission.csv").is_file()
    assert all(i.isdigit() for i in forged | supplemental)


@pytest.mark.parametrize("images,masks", [("train_images/forged", "train_masks"),
                                          ("supplemental_images", "supplemental_masks")])
def test_masks_are_instances_of_the_image(dataset: Path, images: str, masks: str) -> None:
    for path in sorted((dataset / masks).glob("*.npy")):
        mask = np.load(path)
        image = _read(dataset / images / f"{path.stem}.png")
        assert mask.dtype == np.uint8 and mask.ndim == 3, f"{path}: {mask.dtype} {mask.shape}"
        assert mask.shape[1:] == image.shape[:2], f"{path}: {mask.shape} vs image {image.shape}"
        assert set(np.unique(mask).tolist()) <= {0, 1}
        assert 1 <= len(mask) <= 3
        assert all(channel.any() for channel in mask), f"{path}: empty channel"
        assert mask.sum(axis=0).max() == 1, f"{path}: instances overlap"


def test_twin_differs_only_inside_the_mask(dataset: Path) -> None:
    for twin_path in sorted((dataset / "train_images/authentic").glob("*.png")):
        twin, forged = _read(twin_path), _read(dataset / "train_images/forged" / twin_path.name)
        union = np.load(dataset / "train_masks" / f"{twin_path.stem}.npy").any(axis=0)
        assert twin.shape == forged.shape
        changed = twin != forged if twin.ndim == 2 else (twin != forged).any(axis=2)
        assert changed.any(), f"{twin_path.name}: forged image equals its twin"
        assert not (changed & ~union).any(), f"{twin_path.name}: pixels changed outside the mask"


def test_translation_copy_is_pixel_exact_and_shares_a_channel() -> None:
    checked = 0
    for _, forged, masks, events, _ in _forge_samples():
        for channel, event in zip(masks, events):
            assert np.array_equal(channel, event.mask)
            for copy in event.copies:
                if event.kind != "region" or event.feathered or copy.transform != "translate":
                    continue
                assert np.array_equal(copy.matrix[:, :2], np.eye(2))
                dx, dy = (int(v) for v in copy.matrix[:, 2])
                ys, xs = np.nonzero(event.source)
                assert np.array_equal(forged[ys + dy, xs + dx], forged[ys, xs])
                assert np.array_equal(np.roll(event.source, (dy, dx), axis=(0, 1)), copy.mask)
                assert channel[ys, xs].all() and channel[copy.mask].all()
                checked += 1
    assert checked >= 5


def test_events_do_not_overlap_and_stay_inside_the_image() -> None:
    kinds = set()
    for content, forged, masks, events, panels in _forge_samples():
        assert masks.sum(axis=0).max() == 1
        changed = (content != forged).any(axis=2)
        assert not (changed & ~masks.any(axis=0)).any()
        for event in events:
            kinds.add(event.kind)
            pieces = [event.source] + [c.mask for c in event.copies]
            assert all(p.any() for p in pieces)
            for i, a in enumerate(pieces):
                assert not any((a & b).any() for b in pieces[i + 1:]), "a copy overlaps its source"
            if event.kind == "region":  # a copy is the source warped: scale 0.7-1.4, area 0.49-1.96x
                assert all(0.4 < c.mask.sum() / event.source.sum() < 2.5 for c in event.copies)
            if event.kind == "panel":  # a whole panel overwritten
                dest = event.copies[0].mask
                assert any(dest[p.y0:p.y1, p.x0:p.x1].all() and dest.sum() == p.area for p in panels)
    assert kinds == {"region", "panel"}


def test_a_region_copied_twice_is_one_instance() -> None:
    for _, _, masks, events, _ in _forge_samples(80):
        for channel, event in zip(masks, events):
            if len(event.copies) == 2:
                union = event.source | event.copies[0].mask | event.copies[1].mask
                assert np.array_equal(channel.astype(bool), union)
                return
    pytest.fail("no event with two copies in 80 forged figures")


def test_solution_csv(dataset: Path) -> None:
    rows = _read_csv(dataset / "solution.csv")
    assert rows[0] == ["case_id", "annotation", "shape"]
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 8
    assert {str(i) for i in ids} == _ids(dataset / "test_images", ".png")
    train = _ids(dataset / "train_images/forged", ".png") | _ids(dataset / "supplemental_images", ".png")
    assert not {str(i) for i in ids} & train
    n_forged = 0
    for case_id, annotation, shape in rows[1:]:
        image = _read(dataset / "test_images" / f"{case_id}.png")
        assert json.loads(shape) == list(image.shape[:2])
        if annotation == "authentic":
            continue
        n_forged += 1
        instances = rle_decode_instances(annotation, json.loads(shape))
        assert 1 <= len(instances) <= 3
        assert all(m.shape == image.shape[:2] and m.any() for m in instances)
        assert np.sum(instances, axis=0).max() == 1
    assert n_forged == 4
    sample = _read_csv(dataset / "sample_submission.csv")
    assert sample[0] == ["case_id", "annotation"]
    assert [int(r[0]) for r in sample[1:]] == ids and {r[1] for r in sample[1:]} == {"authentic"}


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    sizes = dict(n_forged=3, n_test=2, n_supplemental=1, **SMALL)
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        demo.make_demo_dataset(tmp_path / name, seed=seed, **sizes)
    a, b, c = (_file_bytes(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_script_runs_from_another_folder_and_refuses_a_non_empty_one(tmp_path: Path) -> None:
    flags = ["--output-dir", "demo", "--n-forged", "3", "--n-test", "2", "--n-supplemental", "1",
             "--min-size", "128", "--max-size", "256"]
    first = run_script("make_demo_data.py", *flags, cwd=tmp_path, process=True)   # finds lib/ from elsewhere
    assert first.returncode == 0, first.stderr
    assert "instances per forged image" in first.stdout
    assert len(list((tmp_path / "demo/train_images/forged").glob("*.png"))) == 3

    refused = run_script("make_demo_data.py", *flags, cwd=tmp_path)
    assert refused.returncode != 0
    assert "--overwrite" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    keep = tmp_path / "demo/notes.txt"
    keep.write_text("not generated")
    again = run_script("make_demo_data.py", *flags, "--overwrite", "--seed", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert keep.read_text() == "not generated"
    assert len(list((tmp_path / "demo/train_images/forged").glob("*.png"))) == 3
