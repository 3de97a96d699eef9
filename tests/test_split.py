"""The fixed held-out split: groups stay together, augmented copies never leak into validation,
supplemental images only train, the file is made once and then wins."""
import logging
import warnings

import pandas as pd
import pytest

from lib.data.manifest import FORGED, MANIFEST_COLUMNS, area_bucket, group_of, load_manifest
from lib.data.split import SPLIT_FILE, load_or_make_split, make_split, split_rows
from lib.errors import DataError
from lib.paths import Paths
from tests.helpers import make_layout

FRACTIONS = (0.005, 0.02, 0.2)   # one per area bucket


def synthetic_manifest(n_groups: int = 300, n_supplemental: int = 10) -> pd.DataFrame:
    """A manifest without images: every 10th group authentic-only, the rest forged (area buckets in
    turn), 80 % of those with a twin, every 4th with augmented copies; plus supplemental groups."""
    rows = []

    def add(source, case_id, label, fraction=0.0, augmented=False):
        rows.append({"image_id": f"{source}/{case_id}", "case_id": case_id, "group": group_of(case_id),
                     "source": source, "label": label, "augmented": augmented,
                     "image_path": f"{source}/{case_id}.png", "mask_path": "", "height": 100,
                     "width": 100, "n_instances": int(label), "forged_area": int(fraction * 1e4),
                     "forged_fraction": fraction, "problem": ""})

    for i in range(n_groups):
        cid = str(1000 + i)
        if i % 10 == 0:
            add("authentic", cid, 0)
            continue
        add("forged", cid, FORGED, FRACTIONS[i % 3])
        if i % 10 < 9:
            add("authentic", cid, 0)
        if i % 4 == 1:
            add("forged_augmented", f"{cid}_aug1", FORGED, FRACTIONS[i % 3], augmented=True)
            add("authentic_augmented", f"{cid}_aug1_strong", 0, augmented=True)
    for i in range(n_supplemental):
        add("supplemental", str(90_000 + i), FORGED, 0.03)
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[c for c in MANIFEST_COLUMNS if c in frame.columns])


def paths_for(tmp_path) -> Paths:
    return Paths(data_dir=tmp_path, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")


@pytest.fixture(scope="module")
def manifest():
    return synthetic_manifest()


def test_groups_stay_together_and_augmented_copies_never_reach_val(manifest):
    split = make_split(manifest)
    assert list(split.columns) == ["group", "split"] and split["group"].is_unique
    assert set(split["group"]) == set(manifest["group"])
    train, val = split_rows(manifest, split)
    assert list(train.columns) == list(manifest.columns) and train.index[0] == 0 and val.index[0] == 0
    assert not set(train["group"]) & set(val["group"])
    assert not val["augmented"].any()
    val_groups = set(split.loc[split["split"] == "val", "group"])
    assert not train["group"].isin(val_groups).any()
    # twins: every image of a val group is in val, apart from its augmented copies
    originals = manifest[~manifest["augmented"]]
    assert sorted(val["image_id"]) == sorted(originals.loc[originals["group"].isin(val_groups), "image_id"])
    assert len(train) + len(val) + manifest["group"].isin(val_groups)[manifest["augmented"]].sum() \
        == len(manifest)


def test_supplemental_groups_always_train(manifest):
    for seed in range(3):
        split = make_split(manifest, seed=seed).set_index("group")["split"]
        supplemental = manifest.loc[manifest["source"] == "supplemental", "group"]
        assert (split[supplemental] == "train").all()


def test_split_is_deterministic_for_a_seed(manifest):
    assert make_split(manifest, seed=1).equals(make_split(manifest, seed=1))
    assert not make_split(manifest, seed=1).equals(make_split(manifest, seed=2))
    shuffled = manifest.sample(frac=1.0, random_state=0)
    assert make_split(shuffled, seed=1).equals(make_split(manifest, seed=1))


@pytest.mark.parametrize("val_fraction", [0.2, 0.25])
def test_about_val_fraction_of_groups_with_every_stratum(manifest, val_fraction):
    split = make_split(manifest, val_fraction=val_fraction)
    candidates = split[~split["group"].isin(manifest.loc[manifest["source"] == "supplemental", "group"])]
    share = (candidates["split"] == "val").mean()
    assert share == pytest.approx(val_fraction, abs=0.04)
    _, val = split_rows(manifest, split)
    forged = val[val["label"] == FORGED]
    assert set(area_bucket(forged["forged_fraction"])) == {"<1%", "1-5%", ">5%"}
    authentic_only = set(val["group"]) - set(forged["group"])
    assert authentic_only   # groups with no forged image are validated too


@pytest.mark.parametrize("n_groups", [2, 3, 4, 6, 11])
def test_tiny_data_gives_both_sides_without_warnings(n_groups):
    manifest = synthetic_manifest(n_groups, n_supplemental=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = make_split(manifest)
    counts = split["split"].value_counts()
    assert counts["val"] >= 1 and counts["train"] >= 2   # one group at least, plus the supplemental


def test_single_group_trains_and_bad_fraction_is_refused():
    assert (make_split(synthetic_manifest(1, 0))["split"] == "train").all()
    with pytest.raises(ValueError, match="val_fraction"):
        make_split(synthetic_manifest(5, 0), val_fraction=0.7)


def test_split_on_a_real_layout(tmp_path):
    make_layout(tmp_path)
    manifest = load_manifest(paths_for(tmp_path), progress=False)
    split = load_or_make_split(paths_for(tmp_path), manifest).set_index("group")["split"]
    assert split["90"] == "train" and (split == "val").sum() == 1
    train, val = split_rows(manifest, split.reset_index())
    assert len(train) + len(val) == len(manifest)


def test_file_is_written_once_and_then_wins(tmp_path, manifest, caplog):
    paths = paths_for(tmp_path)
    with caplog.at_level(logging.INFO, logger="lib.data.split"):
        first = load_or_make_split(paths, manifest, seed=42)
    path = tmp_path / SPLIT_FILE
    assert path.is_file() and "new split" in caplog.text
    assert pd.read_csv(path, dtype=str).equals(first)
    text = path.read_text()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lib.data.split"):
        again = load_or_make_split(paths, manifest, val_fraction=0.25, seed=7)
    assert again.equals(first) and path.read_text() == text
    assert "using the existing split" in caplog.text
    assert not make_split(manifest, 0.25, seed=7).equals(first)   # what a re-split would have given


def test_new_groups_train_with_one_warning(tmp_path, manifest, caplog):
    paths = paths_for(tmp_path)
    load_or_make_split(paths, manifest)
    grown = pd.concat([manifest, synthetic_manifest(320, 0).iloc[-40:]], ignore_index=True)
    new = set(grown["group"]) - set(manifest["group"])
    with caplog.at_level(logging.WARNING, logger="lib.data.split"):
        split = load_or_make_split(paths, grown)
    assert (split.set_index("group")["split"][sorted(new)] == "train").all()
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 1
    assert f"{len(new)} group(s)" in warnings_[0].message and f"delete {tmp_path / SPLIT_FILE}" in warnings_[0].message


@pytest.mark.parametrize("content, message", [
    ("group,fold\n1,0\n", "header is 'group,fold'"),
    ("group,split\n1,train\n2,test\n", "row 3 has group '2' and split 'test'"),
    ("group,split\n1,train\n1,val\n", "group '1' is listed twice"),
    ("", "empty file"),
])
def test_broken_split_file_is_a_data_error(tmp_path, manifest, content, message):
    (tmp_path / SPLIT_FILE).write_text(content)
    with pytest.raises(DataError, match=message) as err:
        load_or_make_split(paths_for(tmp_path), manifest)
    assert str(tmp_path / SPLIT_FILE) in str(err.value) and "delete" in str(err.value)
