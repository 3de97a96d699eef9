"""Fault injection: every entry point fed bad input.

The rule (lib/cli.py `run`): bad input gives one clear line `error: <file>: <problem>` on
stderr and exit code 1, or a documented skip / warning; never a Python traceback, never a
partial output file. Two special cases: an unreadable TEST image still gets a row
(`authentic`) and one warning line naming it, exit 0 (Kaggle rejects a submission with a
missing row); a checkpoint that cannot be loaded is a one-line error naming it, exit 1, and
no submission file at all.

Everything is written under pytest's tmp paths; every bin/ script is given --data-dir,
--models-dir, --logs-dir (and --output) inside them. bin/ scripts start slowly (heavy
imports), so the suite runs few of them: one folder holds several bad files at once, and
the checks that need no process of their own run in-process.

bad input                                        | entry point                                 | what happens
-------------------------------------------------|---------------------------------------------|---------------------------------------------
truncated PNG (half its bytes)                   | lib.imageio.load_image                      | DataError "<file>: not a readable image (...)"
truncated PNG                                    | lib.imageio.read_image_size                 | DataError "<file>: truncated PNG (no IEND chunk at its end)"
zero-byte .png / text file named .png            | load_image, read_image_size                 | DataError "<file>: empty file (0 bytes)" / "not a readable image"
grayscale, RGBA, 16-bit, 64x74 PNG               | load_image                                  | RGB uint8 (H, W, 3)
mask: complex, object, str dtype; 4-D; wrong H,W | lib.imageio.load_mask                       | DataError naming the .npy and the problem
zero-byte / text .png, forged without mask,      | bin/inspect_data.py, lib.data.manifest.load_manifest | exit 0; one "<file>: <problem> (skipped)" warning each, listed
  mask wrong H,W / dtype / ndim / unreadable     |                                             |   in the summary, row left out of training
truncated PNG in the training data               | bin/inspect_data.py, lib.data.manifest.load_manifest | "(skipped)" warning, left out like the other broken files
truncated / zero-byte / non-image test image     | bin/script_5_predict.py                     | exit 0, a row `authentic` each, one warning line naming each
same, on a re-run with the result cache on       | lib.inference.infer.Predictor.run                     | row `authentic`, the warning said again (never cached)
empty test folder                                | bin/script_5_predict.py                     | exit 1 "error: <dir>: no images found", no output
no checkpoint in --models-dir                    | bin/script_5_predict.py                     | exit 1 "error: <models>: no segmentation checkpoints", no output
random bytes in the .safetensors                 | bin/script_5_predict.py                     | exit 1 "error: <file>: not a readable safetensors checkpoint", no output
checkpoint whose model_config is another encoder | bin/script_5_predict.py                     | exit 1 "error: <file>: weights do not fit model", no output
missing --ensemble path, truncated checkpoint,   | lib.inference.infer.load_predictor                    | CheckpointError / ProjectError naming the file, one line
  tensors without metadata, in_channels          |                                             |
  mismatch, classifier given as a segmenter      |                                             |
checkpoint naming an unknown encoder / backbone, | lib.inference.infer.load_predictor via lib.cli.run    | exit 1, "error: <file>: unknown encoder ..." / "not a plain
  a hub name (tu-hf-hub:...), a non-dict         |                                             |   encoder name" / "no model_config" / "not JSON", one line;
  model_config, a metadata field not JSON        |                                             |   nothing is built, fetched or read by that name
4000x4000 RGB PNG                                | lib.inference.infer Predictor.run + write_predictions | completes, prob map 64x64, full-size row; peak RSS bounded
4000x4000 RGB PNG                                | lib.inference.fusion.match_file (lib.matching)        | completes at <= 1024 px, masks at 4000x4000; peak RSS bounded
truncated / zero-byte / non-image test image     | bin/match_copy_move.py                      | exit 0, a row `authentic` each, one warning line naming each
invalid UTF-8 hard_negative_ids.txt              | bin/script_3_train_v4.py                    | exit 1 "error: <file>: cannot be read (...)", nothing written
hard-negative line with two words                | lib.training.train.require_hard_negatives + cli.run  | exit 1 "error: <file>, line 2: expected one image id"
hard-negative line with two words                | lib.training.train.train_variant (v3 reads it too)   | DataError naming the file and line, before any checkpoint
empty hard-negative file                         | lib.training.train.require_hard_negatives            | warning "lists no hard negatives", goes on
odd count, non-numeric, string, float, start < 1,| bin/check_submission.py                     | exit 1, "case N, instance k: <problem>" per row, INVALID: n
  length < 1, unsorted, overlapping, bad 2nd     |                                             |
  instance, run past the image                   |                                             |
non-numeric, negative start, run past the image, | bin/score_submission.py                     | exit 1 "error: <sub>: case N, instance k: <problem>"
  unsorted, overlapping RLE                      |                                             |
malformed RLE on a row whose truth is authentic  | bin/score_submission.py                     | exit 1, the same one-line error (validated before scoring)
row with more fields than the header             | lib.competition.submission.read_submission              | SubmissionError "<file>: a row has more fields than the header"
zero-byte / non-image training image             | lib.training.train.train_variant                     | skipped with a warning by the manifest; training runs
truncated PNG in the validation split            | lib.training.train.train_variant (workers=0)         | skipped by the manifest or by the dataset, one warning
image corrupted after the manifest (same stat)   | lib.training.train.train_variant                     | one warning; the next image of its label stands in, runs
a run that stopped before its first checkpoint   | lib.training.train.train_variant (test_train.py)     | its leftovers removed with a line; the plain re-run runs
resume state without scheduler / with bad epoch  | lib.training.train._resume (test_train.py)           | exit 1 "error: <pth>: has no scheduler state; ...", one line
the hostile folder (lib/tools/hostile.py): pixel | match_copy_move.py, script_5_predict.py,    | exit 0, one row per image file (unreadable: authentic), one
  bombs, 1 px images, empty / corrupt files, a   |   kaggle_predict.py (test_hostile.py,       |   warning per bad file or skipped entry, a summary line
  non-UTF-8 name, links, a folder and a pipe     |   test_kaggle.py)                           |   counting them; no traceback
header claiming 100000 x 100000 pixels           | load_image, read_image_size, the manifest   | DataError with the size, over the pixel budget (MAX_PIXELS)
checkpoint metadata img_size "abc" / 0 / 60000,  | lib.models.checkpoints (test_checkpoints.py)| CheckpointError naming the file and the field, one line;
  nested 100,000 deep, vit_giant model_config    |                                             |   the giant refused before it is built (meta device)
a packaged checkpoint replaced by a link, an     | kaggle_predict.py, load_predictor           | exit 1, one line: "a symbolic link inside the package" /
  extra one, an ensemble entry leaving it        |   (test_kaggle.py)                          |   "not recorded in package.json" / "outside the package"
a cache or a log file that cannot be written     | lib.fileio.NpzCache, lib.cli setup_logging  | one warning, the run goes on (found: exit 1 / six tracebacks)
crafted pickle (os.system on load) placed as     | bin/script_5_predict.py                     | exit 1 "error: <pth>: a torch pickle file; ... python
  models/highres_no_ela_v3_best.pth              |   (test_checkpoints.py)                     |   bin/convert_checkpoint.py <pth>", the payload never runs
the same pickle to convert, or as a resume state | convert_checkpoint.py, read_resume_state    | refused by torch.load(weights_only=True), nothing runs
crafted safetensors header: pickle bytes in a    | lib.models.checkpoints.load_model                  | CheckpointError naming the file, one line; nothing runs,
  field, hf-hub: / local-dir: encoder, foreign   |   (test_checkpoints.py)                     |   nothing is fetched
  format                                         |                                             |
a packaged checkpoint with one byte changed, or  | bin/kaggle_predict.py (test_kaggle.py),     | exit 1 "error: <file>: sha256 X but package.json records Y;
  swapped for another of other size              |   lib.inference.infer.load_predictor                  |   ..." (or the sizes), before any install; no submission
SIGKILL while epoch 2's resume state is written  | bin/script_1_train_v3.py, then --resume     | earlier best and last load whole; the next start removes
  (held there by lib.fileio's test hook)         |                                             |   the orphaned temporary and resumes after epoch 1 with the
                                                 |                                             |   best score of the best checkpoint (found: orphans were
                                                 |                                             |   never removed; test_train.py: a resume took the best
                                                 |                                             |   score from the resume state and let a worse epoch
                                                 |                                             |   replace a better best written just before the kill)
full disk (RLIMIT_FSIZE, SIGXFSZ ignored) while  | bin/script_1_train_v3.py --resume,          | exit 1 "error: <file>: writing failed (File too large); the
  writing a checkpoint                           |   bin/convert_checkpoint.py, save_checkpoint|   earlier file, if any, is untouched"; earlier files byte-
                                                 |                                             |   identical, no temporary (found: a traceback, from torch's
                                                 |                                             |   zip writer or an OSError cli.run did not catch)
two predictions at once over one folder, models  | bin/script_5_predict.py                     | both exit 0 with byte-identical submissions, a third run
  folder and caches (network and matcher)        |                                             |   reads the caches (found: runs started in the same second
                                                 |                                             |   wrote into one log file; now one each)
umask 022 / 077 / 002                            | lib.fileio.atomic_path (test_checkpoints.py)| files end 0644 / 0600 / 0664 (found: always 0600, the
                                                 |                                             |   mode of the temporary file)
"""
from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from lib.cli import run
from lib.competition.submission import read_submission, validate_submission_file, write_csv
from lib.data.manifest import load_manifest
from lib.errors import DataError, ProjectError, SubmissionError
from lib.fileio import PAUSE_ENV
from lib.imageio import load_image, load_mask, read_image_size
from lib.inference.fusion import match_file
from lib.inference.infer import ResultCache, load_predictor, write_predictions
from lib.matching import MatchConfig
from lib.models.checkpoints import read_checkpoint, read_resume_state, save_checkpoint
from lib.models.networks import build_model
from lib.models.variants import V3_VARIANTS
from lib.options import PostConfig, TrainOptions
from lib.paths import Paths, best_checkpoint, last_checkpoint
from lib.training.train import require_hard_negatives, train_variant
from tests.helpers import ROOT, TINY_SEGMENTER, box_mask, changed_checkpoint, random_rgb, run_script, save_tiny_segmenter, write_png

TINY_CLASSIFIER = {"arch": "classifier", "encoder": "resnet18", "in_channels": 3}
SEGMENTER_NAME = "highres_no_ela_v3_best.safetensors"    # what `--stage v3` looks for first


# --- bad files -------------------------------------------------------------------------------

def write_truncated_png(path, seed=0, hw=(64, 74)):
    """A valid PNG cut to half its bytes: the header (and so its size) is intact."""
    write_png(path, random_rgb(np.random.default_rng(seed), *hw))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_zero_byte(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_text_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a text file, not a PNG\n")
    return path


BAD_IMAGES = {                      # kind: (writer, the problem load_image names)
    "truncated": (write_truncated_png, "not a readable image"),
    "zero-byte": (write_zero_byte, "empty file (0 bytes)"),
    "text": (write_text_png, "not a readable image"),
}


def odd_image(kind, seed=0):
    """Valid images in the formats a loader must normalise to RGB uint8."""
    rng = np.random.default_rng(seed)
    return {"gray": lambda: rng.integers(0, 256, (30, 40), dtype=np.uint8),
            "rgba": lambda: rng.integers(0, 256, (30, 40, 4), dtype=np.uint8),
            "16-bit": lambda: rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16),
            "small 64x74": lambda: random_rgb(rng, 64, 74)}[kind]()


ODD_KINDS = ["gray", "rgba", "16-bit", "small 64x74"]


def save_object_array(path, _hw):
    np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)


BAD_MASKS = {                       # kind: (writer(path, (H, W)), the problem load_mask names)
    "complex dtype": (lambda p, hw: np.save(p, np.ones((1, *hw), np.complex64)),
                      "mask dtype complex64 is not bool, integer or float"),
    "object dtype": (save_object_array, "not a readable .npy mask (Object arrays cannot be loaded"),
    "str dtype": (lambda p, hw: np.save(p, np.full((1, *hw), "x")), "mask dtype <U1 is not bool"),
    "4-D": (lambda p, hw: np.save(p, np.ones((1, 1, *hw), np.uint8)), "mask must be (n, H, W) or (H, W)"),
    "wrong H,W": (lambda p, hw: np.save(p, np.ones((1, hw[0] + 1, hw[1]), np.uint8)),
                  "does not match its image (H, W)"),
}


# --- helpers ---------------------------------------------------------------------------------

def stderr_lines(result, text):
    return [line for line in result.stderr.splitlines() if text in line]


def assert_one_line_error(result, *fragments, output=None):
    """Exit 1, no traceback, exactly one `error: ` line (the last one) holding every fragment,
    and, with `output`, neither the output file nor a temporary left beside it."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert str(fragment) in errors[0], errors[0]
    if output is not None:
        assert not output.exists()
        assert not list(output.parent.glob(f".{output.name}.*")), "temporary file left behind"


def run_cli(capsys, main):
    """Run `main` the way a bin/ script does (lib.cli.run); return (exit code, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(main)
    return exit_info.value.code, capsys.readouterr().err


def path_fragment(path):
    """`<parent>/<name>` of a path: what an error naming the file must contain."""
    return f"{path.parent.name}/{path.name}"


def no_temporaries(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# --- 1. image loading, masks, manifest -------------------------------------------------------

@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_load_image_names_the_file_and_the_problem(tmp_path, kind):
    writer, problem = BAD_IMAGES[kind]
    path = writer(tmp_path / "bad.png")
    with pytest.raises(DataError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_read_image_size_refuses_broken_files(tmp_path, kind):
    writer, problem = BAD_IMAGES[kind]
    path = writer(tmp_path / "bad.png")
    if kind == "truncated":          # the header is intact, the end chunk is missing
        problem = "truncated PNG (no IEND chunk at its end)"
    with pytest.raises(DataError, match=re.escape(problem)):
        read_image_size(path)


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_odd_formats_load_as_rgb_uint8(tmp_path, kind):
    array = odd_image(kind)
    path = write_png(tmp_path / "odd.png", array)
    image = load_image(path)
    assert image.shape == (*array.shape[:2], 3) and image.dtype == np.uint8
    assert read_image_size(path) == array.shape[:2]


@pytest.mark.parametrize("kind", list(BAD_MASKS))
def test_bad_masks_name_the_file_and_the_problem(tmp_path, kind):
    writer, problem = BAD_MASKS[kind]
    path = tmp_path / "m.npy"
    writer(path, (8, 9))
    with pytest.raises(DataError) as err:
        load_mask(path, expected_hw=(8, 9))
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


# A training layout holding every kind of bad file at once (and valid odd formats).
AUTHENTIC_FILES = {"1": "small 64x74", "2": "gray", "3": "rgba", "4": "16-bit",
                   "5": "truncated", "6": "zero-byte", "7": "text"}
FORGED_MASKS = {"21": "no mask", **{str(22 + k): kind for k, kind in enumerate(BAD_MASKS)}}


@pytest.fixture(scope="module")
def manifest_layout(tmp_path_factory):
    """The data dir, and bin/inspect_data.py run on it once."""
    root = tmp_path_factory.mktemp("manifest")
    data = root / "data"
    authentic, forged, masks = data / "train_images" / "authentic", data / "train_images" / "forged", data / "train_masks"
    masks.mkdir(parents=True)
    for cid, kind in AUTHENTIC_FILES.items():
        if kind in BAD_IMAGES:
            BAD_IMAGES[kind][0](authentic / f"{cid}.png")
        else:
            write_png(authentic / f"{cid}.png", odd_image(kind))
    rng = np.random.default_rng(1)
    write_png(forged / "20.png", random_rgb(rng, 64, 74))                     # the good one
    np.save(masks / "20.npy", box_mask(64, 74, (0, 10, 0, 10)))
    for cid, kind in FORGED_MASKS.items():
        write_png(forged / f"{cid}.png", random_rgb(rng, 16, 20))
        if kind in BAD_MASKS:
            BAD_MASKS[kind][0](masks / f"{cid}.npy", (16, 20))
    result = run_script("inspect_data.py", "--data-dir", data, "--models-dir", root / "models",
                        "--logs-dir", root / "logs", cwd=root)
    return data, result


def test_inspect_data_lists_and_skips_every_problem(manifest_layout):
    data, result = manifest_layout
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    expected = {"authentic/6.png": "empty file (0 bytes)",
                "authentic/7.png": "not a readable image",
                "forged/21.png": "forged image without a mask",
                **{f"train_masks/{cid}.npy": BAD_MASKS[kind][1] for cid, kind in FORGED_MASKS.items()
                   if kind in BAD_MASKS}}
    for name, problem in expected.items():
        listed = [line for line in result.stdout.splitlines() if name in line]
        assert len(listed) == 1 and problem in listed[0], (name, result.stdout)
        warned = stderr_lines(result, name)
        assert len(warned) == 1 and problem in warned[0] and warned[0].endswith("(skipped)"), (name, result.stderr)
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped with a problem: ")]
    assert len(skipped) == 1 and int(skipped[0].split(": ")[1]) >= len(expected), result.stdout


def test_manifest_keeps_odd_but_valid_images_with_their_sizes(manifest_layout):
    data, _ = manifest_layout
    paths = Paths(data_dir=data, models_dir=data.parent / "models", logs_dir=data.parent / "logs")
    usable = load_manifest(paths, progress=False, report=False).set_index("image_id")
    for cid, kind in AUTHENTIC_FILES.items():
        if kind not in BAD_IMAGES:
            shape = odd_image(kind).shape[:2]
            assert tuple(usable.loc[f"authentic/{cid}", ["height", "width"]]) == shape, kind
    assert usable.loc["forged/20", "n_instances"] == 1
    assert not any(f"forged/{cid}" in usable.index for cid in FORGED_MASKS)
    assert not any(f"authentic/{cid}" in usable.index for cid in ("6", "7"))


def test_manifest_flags_a_truncated_png(manifest_layout):
    data, result = manifest_layout
    warned = stderr_lines(result, "authentic/5.png")
    assert len(warned) == 1 and warned[0].endswith("(skipped)"), result.stderr


# --- 2. prediction ---------------------------------------------------------------------------

GOOD_TEST = {"1": "small 64x74", "2": "gray", "3": "rgba", "4": "16-bit"}
BAD_TEST = {"10": "truncated", "11": "zero-byte", "12": "text"}


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict") / "test_images"
    for cid, kind in GOOD_TEST.items():
        write_png(folder / f"{cid}.png", odd_image(kind, seed=int(cid)))
    for cid, kind in BAD_TEST.items():
        BAD_IMAGES[kind][0](folder / f"{cid}.png")
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model folders: a tiny good segmenter, random bytes, another architecture's config, none."""
    root = tmp_path_factory.mktemp("models")
    good = save_tiny_segmenter(root / "good" / SEGMENTER_NAME, img_size=64)
    corrupt = root / "corrupt" / SEGMENTER_NAME
    corrupt.parent.mkdir()
    corrupt.write_bytes(np.random.default_rng(5).bytes(4096))
    other = root / "other_arch" / SEGMENTER_NAME
    other.parent.mkdir()
    changed_checkpoint(good, other, model_config={"arch": "attention_fpn", "encoder": "resnet34", "in_channels": 3})
    (root / "none").mkdir()
    return root


def predict(tmp, input_dir, models_dir, output):
    return run_script("script_5_predict.py", "--input-dir", input_dir, "--output", output,
                      "--models-dir", models_dir, "--logs-dir", tmp / "logs", "--data-dir", tmp / "data",
                      "--device", "cpu", "--no-progress", "--stage", "v3", "--fusion", "network", cwd=tmp)


def assert_row_per_image_and_warnings(result, output, folder, warning):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert validate_submission_file(output, test_dir=folder) == []
    rows = read_submission(output).set_index("case_id")["annotation"]
    assert sorted(rows.index) == sorted([*GOOD_TEST, *BAD_TEST])
    for cid, kind in BAD_TEST.items():
        assert rows[cid] == "authentic", kind
        warned = [line for line in stderr_lines(result, f"{cid}.png: ") if warning in line]
        assert len(warned) == 1 and "WARNING" in warned[0], (kind, result.stderr)
        assert BAD_IMAGES[kind][1] in warned[0]


@pytest.mark.slow
def test_predict_writes_a_row_per_image_and_one_warning_per_bad_file(test_folder, models, tmp_path):
    output = tmp_path / "out" / "submission.csv"
    result = predict(tmp_path, test_folder, models / "good", output)
    assert_row_per_image_and_warnings(result, output, test_folder, "; predicted authentic")
    assert not no_temporaries(tmp_path)


@pytest.mark.parametrize("case", ["empty input folder", "no checkpoint", "corrupt checkpoint",
                                  "other architecture"])
@pytest.mark.slow
def test_predict_refuses_with_one_line_and_writes_nothing(test_folder, models, tmp_path, case):
    input_dir, models_dir = test_folder, models / "good"
    if case == "empty input folder":
        input_dir = tmp_path / "empty"
        input_dir.mkdir()
        fragments = [f"{input_dir}: no images found"]
    elif case == "no checkpoint":
        models_dir = models / "none"
        fragments = ["none: no segmentation checkpoints"]       # what follows: test_tuned.py
    elif case == "corrupt checkpoint":
        models_dir = models / "corrupt"
        fragments = [path_fragment(models_dir / SEGMENTER_NAME) + ": not a readable safetensors checkpoint"]
    else:
        models_dir = models / "other_arch"
        fragments = [path_fragment(models_dir / SEGMENTER_NAME) + ": weights do not fit model", "resnet34"]
    output = tmp_path / "submission.csv"
    assert_one_line_error(predict(tmp_path, input_dir, models_dir, output), *fragments, output=output)


@pytest.fixture(scope="module")
def bad_checkpoints(models):
    """name -> (path, what the error must say) for checkpoints that must be refused cleanly."""
    folder, good = models / "refused", models / "good" / SEGMENTER_NAME
    folder.mkdir()
    data = good.read_bytes()
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    bare = folder / "bare_state_dict.safetensors"
    changed_checkpoint(good, bare, metadata=None)
    four = folder / "in_channels_4.safetensors"
    changed_checkpoint(good, four, model_config=dict(TINY_SEGMENTER, in_channels=4))
    classifier = folder / "classifier.safetensors"
    torch.manual_seed(0)
    save_checkpoint(classifier, build_model(TINY_CLASSIFIER), TINY_CLASSIFIER, img_size=64)
    return {"missing": (folder / "missing.safetensors", "checkpoint not found"),
            "truncated": (truncated, "not a readable safetensors checkpoint"),
            "bare state dict": (bare, "not a checkpoint of this project"),
            "in_channels mismatch": (four, "weights do not fit model"),
            "classifier as segmenter": (classifier, "is a classifier checkpoint, not a segmentation model")}


@pytest.mark.parametrize("case", ["missing", "truncated", "bare state dict", "in_channels mismatch",
                                  "classifier as segmenter"])
def test_load_predictor_refuses_bad_checkpoints_naming_them(models, bad_checkpoints, case):
    path, problem = bad_checkpoints[case]
    with pytest.raises(ProjectError) as err:
        load_predictor(models / "good", "cpu", ensemble=[str(path)], use_classifier=False, use_specialist=False)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


CONFIG_CHANGES = {"unknown smp encoder": {"model_config": dict(TINY_SEGMENTER, encoder="no-such-encoder")},
                  "unknown timm backbone": {"model_config": dict(TINY_CLASSIFIER, encoder="no_such_backbone")},
                  "hub encoder": {"model_config": dict(TINY_SEGMENTER, encoder="tu-hf-hub:someone/model")},
                  "model_config not a dict": {"model_config": "attention_fpn"},
                  "metadata not JSON": {"raw": {"epoch": "{not json"}}}


@pytest.mark.parametrize("case", list(CONFIG_CHANGES))
def test_checkpoint_of_an_unknown_architecture_is_a_one_line_error(models, tmp_path, capsys, case):
    path = changed_checkpoint(models / "good" / SEGMENTER_NAME, tmp_path / "foreign.safetensors",
                              **CONFIG_CHANGES[case])
    code, err = run_cli(capsys, lambda: load_predictor(models / "good", "cpu", ensemble=[str(path)],
                                                        use_classifier=False, use_specialist=False))
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith(f"error: {path}: ")


@pytest.mark.slow
def test_an_unreadable_image_is_warned_again_on_a_cached_run(test_folder, models, tmp_path, caplog):
    predictor = load_predictor(models / "good", "cpu", stage="v3", use_classifier=False, workers=0)
    cache = ResultCache(tmp_path / "cache", predictor.key())
    paths = sorted(test_folder.glob("*.png"))
    predictor.run(paths, gate=0.25, cache=cache, progress=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        results = predictor.run(paths, gate=0.25, cache=cache, progress=False)
    assert sum(bool(r.error) for r in results) == len(BAD_TEST)
    for cid in BAD_TEST:
        assert sum(f"{cid}.png: " in m and m.endswith("; predicted authentic") for m in caplog.messages) == 1, \
            caplog.text


# --- 3. a large image ------------------------------------------------------------------------

def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark where allowed; return the baseline to subtract from
    ru_maxrss (KiB): the current RSS after a reset, else the current peak (an underestimate)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_growth_mb(baseline: int) -> float:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024


@pytest.fixture(scope="module")
def large_image(tmp_path_factory):
    """A 4000x4000 RGB PNG: a micrograph-like texture (1000 px upscaled 4x) with one block copied."""
    from tests.test_matching import texture
    gray = cv2.resize(texture(1000, 1000, 0), (4000, 4000), interpolation=cv2.INTER_NEAREST)
    gray[2600:3400, 2400:3200] = gray[400:1200, 600:1400]
    rgb = np.dstack([gray, gray, 255 - gray])
    path = tmp_path_factory.mktemp("large") / "4000.png"
    assert cv2.imwrite(str(path), rgb, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def test_large_image_through_the_predictor_is_bounded(large_image, models, tmp_path):
    baseline = _reset_peak_rss()
    predictor = load_predictor(models / "good", "cpu", stage="v3", use_classifier=False, workers=0, batch_size=1)
    [result] = predictor.run([large_image], progress=False)
    assert not result.error and result.hw == (4000, 4000)
    assert result.prob_map.shape == (64, 64)                 # the model's img_size, not the image's
    assert max(result.prob_map.shape) <= 1024
    output = tmp_path / "large.csv"
    write_predictions([result], PostConfig(), output)        # post-processing at the full 4000x4000
    assert validate_submission_file(output, test_dir=large_image.parent) == []
    assert _peak_growth_mb(baseline) < 1536


def test_large_image_through_the_matcher_is_bounded(large_image):
    baseline = _reset_peak_rss()
    config = MatchConfig()
    assert config.max_side <= 1024
    output = match_file(large_image, config)
    assert not output.error and output.hw == (4000, 4000)
    assert output.packed.shape[1] * 8 >= 4000 * 4000 and all(m.shape == (4000, 4000) for m in output.masks())
    assert _peak_growth_mb(baseline) < 1536


# --- 4. the matcher script -------------------------------------------------------------------

@pytest.mark.slow
def test_match_copy_move_writes_a_row_per_image_and_one_warning_per_bad_file(test_folder, tmp_path):
    output = tmp_path / "matcher.csv"
    result = run_script("match_copy_move.py", "--input-dir", test_folder, "--output", output,
                        "--models-dir", tmp_path / "models", "--logs-dir", tmp_path / "logs",
                        "--data-dir", tmp_path / "data", "--no-progress", cwd=tmp_path)
    assert_row_per_image_and_warnings(result, output, test_folder, "; no match, its row: authentic")


# --- 5. hard negatives -----------------------------------------------------------------------

@pytest.mark.slow
def test_v4_training_stops_on_an_unreadable_hard_negative_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bad = data / "hard_negative_ids.txt"
    bad.write_bytes(b"\xff\xfe\x00\x80\x9fbinary garbage\n\x00\x01")
    result = run_script("script_3_train_v4.py", "--data-dir", data, "--models-dir", tmp_path / "models",
                        "--logs-dir", tmp_path / "logs", "--encoder-weights", "none", "--no-progress", cwd=tmp_path)
    assert_one_line_error(result, f"{bad.resolve()}: cannot be read", "utf-8")
    assert not (tmp_path / "models").exists()


def test_malformed_hard_negative_line_is_one_line_error(tmp_path, capsys):
    paths = Paths(data_dir=tmp_path, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    bad = tmp_path / "hard_negative_ids.txt"
    bad.write_text("# mined\nauthentic/1\nauthentic/2 0.93\n")
    code, err = run_cli(capsys, lambda: require_hard_negatives(paths))
    assert code == 1
    assert err.strip().splitlines() == [f"error: {bad}, line 3: expected one image id, got 'authentic/2 0.93'"]


def test_empty_hard_negative_file_is_a_warning(tmp_path, caplog):
    paths = Paths(data_dir=tmp_path, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")
    (tmp_path / "hard_negative_ids.txt").write_text("# nothing mined\n")
    with caplog.at_level(logging.WARNING):
        require_hard_negatives(paths)
    assert "lists no hard negatives" in caplog.text


# --- 6. submissions --------------------------------------------------------------------------

CHECK_CASES = {                 # case_id: (annotation, the problem line after "case N, ")
    "1": ("[1, 2, 3]", "instance 1: odd number of values (3)"),
    "2": ("[a, 2]", "instance 1: not a JSON list of integers"),
    "3": ('["1", "2"]', "instance 1: not a JSON list of integers"),
    "4": ("[1.5, 2]", "instance 1: not a JSON list of integers"),
    "5": ("[-1, 2]", "instance 1: starts must be >= 1"),
    "6": ("[0, 2]", "instance 1: starts must be >= 1"),
    "7": ("[1, -2]", "instance 1: lengths must be >= 1"),
    "8": ("[10, 2, 1, 2]", "instance 1: starts must be in ascending order"),
    "9": ("[1, 5, 3, 2]", "instance 1: runs must not overlap"),
    "10": ("[1, 2];[5, x]", "instance 2: not a JSON list of integers"),
    "11": ("[1, 2];[599, 5]", "instance 2: run ends at pixel 603, past the 20x30 image"),
}


def test_check_submission_names_every_malformed_rle(tmp_path):
    test_dir = tmp_path / "test_images"
    rng = np.random.default_rng(3)
    for cid in [*CHECK_CASES, "12"]:
        write_png(test_dir / f"{cid}.png", random_rgb(rng, 20, 30))
    submission = tmp_path / "submission.csv"
    write_csv(submission, ["case_id", "annotation"],
              [(cid, annotation) for cid, (annotation, _) in CHECK_CASES.items()] + [("12", "[1, 600]")])
    result = run_script("check_submission.py", submission, "--input-dir", test_dir, "--data-dir", tmp_path,
                        "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    for cid, (_, problem) in CHECK_CASES.items():
        named = [line for line in lines if line.startswith(f"{submission}: case {cid}, ")]
        assert len(named) == 1 and problem in named[0], (cid, result.stdout)
    assert not any("case 12" in line for line in lines)
    assert lines[-1] == f"INVALID: {len(CHECK_CASES)} problem(s) in {submission}"


SCORE_CASES = {
    "non-numeric": ("[1, x]", "not a JSON list of integers"),
    "negative start": ("[-3, 2]", "starts must be >= 1"),
    "run past the image": ("[95, 10]", "run ends at pixel 104, past the 10x10 image"),
    "unsorted": ("[50, 2, 10, 2]", "starts must be in ascending order"),
    "overlapping": ("[10, 5, 12, 2]", "runs must not overlap"),
}


def score(tmp_path, annotations, truths=("[1, 2]", "authentic")):
    solution, submission = tmp_path / "solution.csv", tmp_path / "submission.csv"
    write_csv(solution, ["case_id", "annotation", "shape"],
              [(str(i + 1), t, "[10, 10]") for i, t in enumerate(truths)])
    write_csv(submission, ["case_id", "annotation"], [(str(i + 1), a) for i, a in enumerate(annotations)])
    return run_script("score_submission.py", submission, "--solution", solution, cwd=tmp_path)


@pytest.mark.parametrize("case", list(SCORE_CASES))
def test_score_submission_rejects_a_malformed_rle(tmp_path, case):
    annotation, problem = SCORE_CASES[case]
    result = score(tmp_path, [annotation, "authentic"])
    assert_one_line_error(result, "error: ", "submission.csv: case 1, instance 1: ", problem)


def test_score_submission_rejects_a_malformed_rle_on_an_authentic_row(tmp_path):
    assert_one_line_error(score(tmp_path, ["[1, 2]", "[1, 2, 3]"]), "case 2", "odd number")


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text('case_id,annotation\n1,"[1, 2]",extra\n2,authentic\n')
    with pytest.raises(SubmissionError, match=re.escape(str(path))):
        read_submission(path)


# --- 7. training with broken files ----------------------------------------------------------

TRAIN_VARIANT = V3_VARIANTS["highres_no_ela"].with_overrides(model=TINY_SEGMENTER)


def train_options(**changes):
    options = dict(epochs=1, img_size=64, batch_size=4, workers=0, encoder="resnet18", encoder_weights="none",
                   progress=False, use_hard_negatives=False)
    options.update(changes)
    return TrainOptions(**options)


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """Four forged images with their authentic twins (group 4 held out), a zero-byte and a text
    training image; the split is written, so which image validates is fixed."""
    data = tmp_path_factory.mktemp("train") / "data"
    rng = np.random.default_rng(7)
    (data / "train_masks").mkdir(parents=True)
    for cid in ("1", "2", "3", "4"):
        write_png(data / "train_images" / "forged" / f"{cid}.png", random_rgb(rng, 64, 64))
        np.save(data / "train_masks" / f"{cid}.npy", box_mask(64, 64, (8, 28, 8, 28)))
        write_png(data / "train_images" / "authentic" / f"{cid}.png", random_rgb(rng, 64, 64))
    write_zero_byte(data / "train_images" / "authentic" / "90.png")
    write_text_png(data / "train_images" / "authentic" / "91.png")
    (data / "split.csv").write_text("group,split\n1,train\n2,train\n3,train\n4,val\n5,val\n90,train\n91,train\n")
    return data


def copy_data(train_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(train_data, data)
    return Paths(data_dir=data, models_dir=tmp_path / "models", logs_dir=tmp_path / "logs")


def test_training_skips_unreadable_images_with_a_warning_and_runs(train_data, tmp_path, caplog):
    paths = copy_data(train_data, tmp_path)
    with caplog.at_level(logging.WARNING):
        result = train_variant(TRAIN_VARIANT, train_options(), paths)
    assert result.best_path.is_file() and len(result.history) == 1
    assert "authentic/90.png: empty file (0 bytes) (skipped)" in caplog.text
    assert "authentic/91.png: not a readable image (truncated, corrupt or not an image) (skipped)" in caplog.text
    assert not no_temporaries(tmp_path)


@pytest.mark.slow
def test_training_on_a_truncated_png_is_a_clear_data_error_or_a_skip(train_data, tmp_path, caplog):
    paths = copy_data(train_data, tmp_path)
    bad = write_truncated_png(paths.data_dir / "train_images" / "authentic" / "5.png", seed=9, hw=(64, 64))
    try:
        with caplog.at_level(logging.WARNING):
            train_variant(TRAIN_VARIANT, train_options(), paths)
    except DataError as exc:       # today: the manifest reads the header only; validation meets the file
        assert str(exc) == f"{bad}: not a readable image (truncated, corrupt or not an image)"
        assert not (paths.models_dir / f"{TRAIN_VARIANT.run_name}_best.safetensors").exists()
    else:                          # once the manifest checks more than the header
        assert "authentic/5.png" in caplog.text and "(skipped)" in caplog.text
    assert not no_temporaries(tmp_path)


def test_v3_training_stops_on_a_malformed_hard_negative_file(train_data, tmp_path, capsys):
    paths = copy_data(train_data, tmp_path)
    bad = paths.data_dir / "hard_negative_ids.txt"
    bad.write_text("authentic/1\nauthentic/2 0.93\n")
    code, err = run_cli(capsys, lambda: train_variant(TRAIN_VARIANT, train_options(use_hard_negatives=True), paths))
    assert code == 1
    assert err.strip().splitlines() == [f"error: {bad}, line 2: expected one image id, got 'authentic/2 0.93'"]
    assert not list(paths.models_dir.glob("*_best.*"))           # stopped before any checkpoint


def test_an_image_corrupted_after_the_manifest_is_skipped_with_one_warning(train_data, tmp_path, caplog):
    paths = copy_data(train_data, tmp_path)
    load_manifest(paths, progress=False, report=False)           # the cached manifest knows the file as good
    bad = paths.data_dir / "train_images" / "authentic" / "4.png"   # held out: validation reads it
    stat = bad.stat()
    data = bytearray(bad.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)        # bit rot: same size, same mtime
    bad.write_bytes(bytes(data))
    os.utime(bad, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    train_variant(TRAIN_VARIANT, train_options(workers=0), paths)      # no error: the run finishes
    warned = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert warned == [f"{bad}: not a readable image (truncated, corrupt or not an image); skipped (1 unreadable "
                      f"training file(s) so far in this process), another image in its place"]
    assert best_checkpoint(paths.models_dir, TRAIN_VARIANT.run_name).is_file()


# --- 8. kills, full disks, two runs at once ----------------------------------------------------

def test_a_cache_that_cannot_be_written_is_one_warning_and_the_run_goes_on(tmp_path, caplog):
    from lib.fileio import NpzCache
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder would be")      # mkdir fails, as on a read-only disk
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    cache = NpzCache(blocked / "key")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            cache.write(image, value=np.zeros(2))
    assert cache.read(image) is None and not cache.writable
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"{blocked / 'key'}: ") and "going on without writing" in said[0]


def test_the_cache_keys_an_image_by_its_bytes_not_its_name_size_or_time(tmp_path):
    from lib.fileio import NpzCache
    cache = NpzCache(tmp_path / "cache")
    image = tmp_path / "a.png"
    image.write_bytes(b"first image")
    stat = image.stat()
    cache.write(image, value=np.array([1]))
    image.write_bytes(b"other image")                                  # same size, its time restored
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.read(image) is None
    twin = tmp_path / "renamed.png"
    twin.write_bytes(b"first image")                                   # the same bytes under another name
    assert cache.read(twin)["value"].tolist() == [1]


def test_a_log_file_that_cannot_be_written_is_one_warning_and_the_run_goes_on(tmp_path, capsys):
    import errno

    from lib.cli import setup_logging

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    log_file = setup_logging("full", tmp_path / "logs")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "baseFilename", None) == str(log_file))
    handler.stream = FullDisk()
    for i in range(6):
        logging.getLogger("run").info("step %d", i)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {log_file}: the log file cannot be written (No space left on device); logging to the console only"]
    assert err.count("step ") == 6                       # the console still has every line
    setup_logging("after")                               # the handlers of this test closed



def _train_args(paths, epochs, *extra):
    return ["--model", "highres_no_ela", "--epochs", epochs, "--img-size", 64, "--batch-size", 4, "--workers", 0,
            "--encoder", "resnet18", "--encoder-weights", "none", "--no-hard-negatives", "--no-progress", "--data-dir", paths.data_dir,
            "--models-dir", paths.models_dir, "--logs-dir", paths.logs_dir, *extra]


@pytest.mark.slow
def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one(train_data, tmp_path, caplog):
    """SIGKILL while epoch 2's resume state is being written (held there by the test hook of
    lib.fileio, not raced with a timer): both earlier checkpoints load, --resume continues after
    epoch 1 and removes the killed writer's temporary file."""
    paths = copy_data(train_data, tmp_path)
    run_name = TRAIN_VARIANT.run_name
    env = {**os.environ, PAUSE_ENV: f"{run_name}_last.pth:2"}
    process = subprocess.Popen([sys.executable, str(ROOT / "bin" / "script_1_train_v3.py"),
                                *map(str, _train_args(paths, 3))], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:                       # the writer says when it holds
        seen.append(line)
        if line.startswith(f"{PAUSE_ENV}: holding"):
            break
    assert process.poll() is None, "".join(seen[-20:])
    process.kill()
    process.wait(timeout=30)
    process.stderr.close()

    best, last = best_checkpoint(paths.models_dir, run_name), last_checkpoint(paths.models_dir, run_name)
    orphans = list(paths.models_dir.glob(f".{last.name}.{process.pid}.*.tmp"))
    assert len(orphans) == 1                          # the kill left the complete-but-unrenamed file
    assert read_resume_state(last)["epoch"] == 1      # the previous resume state, whole
    best_at_kill = read_checkpoint(best)              # the best as it was, whole (epoch 1 or 2)
    assert best_at_kill["epoch"] in (1, 2)

    with caplog.at_level(logging.INFO):              # --resume, in this process (the script's own path)
        train_variant(V3_VARIANTS["highres_no_ela"], train_options(epochs=3, resume=True, keep_last=True), paths)
    assert f"removed {orphans[0].name}, left by a run killed while writing" in caplog.text
    assert f"resuming from {last} after epoch 1" in caplog.text
    assert f"best so far: val score {best_at_kill['best_score']:.4f} at epoch {best_at_kill['epoch']}" in caplog.text
    state = read_resume_state(last)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert read_checkpoint(best)["best_score"] >= best_at_kill["best_score"]
    assert not no_temporaries(paths.models_dir)


@pytest.mark.slow
def test_ctrl_c_in_a_training_script_says_how_to_go_on(train_data, tmp_path):
    paths = copy_data(train_data, tmp_path)
    env = {**os.environ, PAUSE_ENV: f"{TRAIN_VARIANT.run_name}_last.pth:1"}     # held in epoch 1's save
    # SIGINT as a terminal's Ctrl-C: with its default disposition even where this suite runs in the
    # background (a non-interactive shell starts background jobs with SIGINT ignored)
    process = subprocess.Popen([sys.executable, str(ROOT / "bin" / "script_1_train_v3.py"),
                                *map(str, _train_args(paths, 2))], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stderr:
        if line.startswith(f"{PAUSE_ENV}: holding"):
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130 and "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == ("interrupted; the finished epochs are saved: to go on from the last one, "
                                             "run the same command with --resume (--overwrite starts anew)")
    assert read_checkpoint(best_checkpoint(paths.models_dir, TRAIN_VARIANT.run_name))["epoch"] == 1


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_and_keeps_the_earlier_checkpoints(train_data, tmp_path):
    """RLIMIT_FSIZE (SIGXFSZ ignored) is a full disk without mount rights: a second run, resumed,
    cannot write its checkpoint; the first run's files stay whole, no temporary is left."""
    paths = copy_data(train_data, tmp_path)
    train_variant(V3_VARIANTS["highres_no_ela"], train_options(keep_last=True), paths)   # the script's run, in-process
    best = best_checkpoint(paths.models_dir, TRAIN_VARIANT.run_name)
    last = last_checkpoint(paths.models_dir, TRAIN_VARIANT.run_name)
    before = {p: p.read_bytes() for p in (best, last)}

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))   # 1 MiB: logs fit, weights do not

    result = subprocess.run([sys.executable, str(ROOT / "bin" / "script_1_train_v3.py"),
                             *map(str, _train_args(paths, 2, "--resume"))], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, preexec_fn=full_disk)
    written = last if "_last.pth" in result.stderr.splitlines()[-1] else best
    assert_one_line_error(result, f"error: {written}: writing failed (File too large); the earlier file, if any, "
                                  f"is untouched")
    assert all(p.read_bytes() == data for p, data in before.items())
    assert not no_temporaries(paths.models_dir)


@pytest.mark.slow
def test_two_predictions_over_one_folder_and_cache_at_once_agree(test_folder, models, tmp_path):
    """Two script_5_predict runs started together on the same images, models and caches (network
    and matcher): both finish, with byte-identical submissions, one log file each."""
    def start(name):
        return subprocess.Popen([sys.executable, str(ROOT / "bin" / "script_5_predict.py"),
                                 "--input-dir", str(test_folder), "--output", str(tmp_path / name),
                                 "--models-dir", str(models / "good"), "--logs-dir", str(tmp_path / "logs"),
                                 "--device", "cpu", "--no-progress", "--stage", "v3", "--fusion", "first",
                                 "--workers", "0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    runs = [start("a.csv"), start("b.csv")]
    outputs = [process.communicate(timeout=300) for process in runs]
    for process, (_, err) in zip(runs, outputs):
        assert process.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert len(list((models / "good" / "cache").rglob("*.npz"))) >= 2 * len(GOOD_TEST)   # network + matcher
    assert not no_temporaries(models / "good") and not no_temporaries(tmp_path)
    logs = sorted((tmp_path / "logs").glob("script_5_predict_*.log"))
    assert len(logs) == 2                             # one log each, even when started in the same second
