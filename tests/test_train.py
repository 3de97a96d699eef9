"""The shared training loop: a step lowers the loss, a smoke run writes checkpoints that reload
to the same outputs, validation uses the competition score, the scripts run end to end."""
import json
import logging
import re
import shutil
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import lib.training.train
from lib.data.demo import make_demo_dataset
from lib.models.checkpoints import load_model, read_checkpoint, read_resume_state
from lib.models.losses import CombinedLoss, LossConfig, build_loss
from lib.models.networks import build_model
from lib.models.variants import CLASSIFIER, V3_VARIANTS
from lib.options import TrainOptions
from lib.paths import Paths
from lib.training.train import train_variant
from tests.helpers import run_script, save_tiny_segmenter

TINY_SEG = {"arch": "attention_fpn", "encoder": "resnet18", "in_channels": 3}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root / "data", n_forged=16, n_test=2, n_supplemental=1, max_size=256, seed=3)
    return root


@pytest.fixture
def own_demo(demo, tmp_path):
    """A copy of the shared demo data for a test that changes it (a hard-negative list written or
    removed), so that no test's outcome depends on the order they run in."""
    shutil.copytree(demo / "data", tmp_path / "data")
    return tmp_path


def paths_in(root, name):
    return Paths(data_dir=root / "data", models_dir=root / name / "models", logs_dir=root / name / "logs")


@pytest.mark.slow
def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model(TINY_SEG).train()
    loss_fn = CombinedLoss(LossConfig())
    images = torch.randn(4, 3, 64, 64)
    targets = torch.zeros(4, 1, 64, 64)
    targets[0, :, 10:30, 10:30] = 1
    targets[1, :, 40:50, 5:20] = 1
    assert_steps_lower_the_loss(model, loss_fn, images, targets)


def test_classifier_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model({"arch": "classifier", "encoder": "resnet18", "in_channels": 3}).train()
    assert_steps_lower_the_loss(model, build_loss("bce"), torch.randn(4, 3, 64, 64),
                                torch.tensor([1.0, 0.0, 1.0, 0.0]))


def assert_steps_lower_the_loss(model, loss_fn, images, targets, steps=8):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses


@pytest.mark.slow
def test_segmentation_smoke_run_writes_reloadable_checkpoints(demo, caplog):
    variant = V3_VARIANTS["highres_no_ela"].with_overrides(model=TINY_SEG)
    options = TrainOptions(keep_last=True, epochs=2, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=12, progress=False)
    paths = paths_in(demo, "seg")
    with caplog.at_level(logging.INFO):
        result = train_variant(variant, options, paths)
    assert [h["epoch"] for h in result.history] == [1, 2]
    for h in result.history:
        assert set(h) >= {"train_loss", "val_loss", "score", "pixel_f1", "recall", "fp_rate", "precision", "image_auc"}
        assert 0.0 <= h["score"] <= 1.0 and (0.0 <= h["image_auc"] <= 1.0 or np.isnan(h["image_auc"]))
    assert result.best_score == max(h["score"] for h in result.history)
    assert "highres_no_ela_v3 epoch 2/2 | train loss" in caplog.text and "val score" in caplog.text

    model, checkpoint = load_model(result.best_path)
    assert checkpoint["model_config"] == TINY_SEG
    assert checkpoint["val_score"] == result.best_score and checkpoint["img_size"] == 64
    assert checkpoint["variant"]["name"] == "highres_no_ela"
    last = read_resume_state(result.last_path)
    assert last["epoch"] == 2 and "optimizer_state_dict" in last and "scheduler_state_dict" in last
    x = torch.randn(2, 3, 64, 64)
    reloaded = build_model(last["model_config"])
    reloaded.load_state_dict(last["model_state_dict"])
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(x), result.model.eval()(x))
    history = pd.read_csv(paths.models_dir / "highres_no_ela_v3_history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert list(history.columns[:4]) == ["epoch", "train_loss", "val_loss", "score"]
    assert history["score"].tolist() == pytest.approx([h["score"] for h in result.history])
    assert (history["seconds"] > 0).all() and {"recall", "fp_rate", "lr", "image_auc"} <= set(history.columns)
    assert 0 < history["baseline"].iloc[0] < 1 and len(set(history["baseline"])) == 1   # the authentic fraction
    curves = paths.models_dir / "highres_no_ela_v3_curves.png"
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = json.loads((paths.models_dir / "highres_no_ela_v3_args.json").read_text())
    assert args["variant"]["loss_config"]["focal_alpha"] == 0.75
    assert args["train_images"] <= 12 and args["val_images"] <= 12
    assert (paths.data_dir / "split.csv").is_file()


@pytest.mark.slow
def test_same_seed_same_weights(demo):
    variant = V3_VARIANTS["high_recall"].with_overrides(model=TINY_SEG)
    options = TrainOptions(keep_last=True, epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=8, progress=False)
    a = read_resume_state(train_variant(variant, options, paths_in(demo, "a")).last_path)
    b = read_resume_state(train_variant(variant, options, paths_in(demo, "b")).last_path)
    assert a["loss"] == b["loss"]
    for key, value in a["model_state_dict"].items():
        assert torch.equal(value, b["model_state_dict"][key]), key


@pytest.mark.slow
def test_encoder_flag_is_checked_and_a_resume_must_build_the_same_network(demo):
    from lib.errors import ProjectError
    from lib.models.variants import V4_VARIANTS
    options = TrainOptions(keep_last=True, epochs=1, img_size=64, batch_size=4, workers=0, encoder="resnet18",
                           encoder_weights="none", limit=8, progress=False)
    paths = paths_in(demo, "encoder")
    result = train_variant(V3_VARIANTS["high_recall"], options, paths)
    assert read_checkpoint(result.best_path)["model_config"]["encoder"] == "resnet18"
    args = (paths.models_dir / "high_recall_v3_args.json").read_text()
    with pytest.raises(ProjectError, match=r"_last\.pth: was trained with encoder 'resnet18' \(now "
                                           r"'timm-efficientnet-b2'\); resume with the run's own settings"):
        train_variant(V3_VARIANTS["high_recall"], replace(options, encoder=None, epochs=2, resume=True), paths)
    assert (paths.models_dir / "high_recall_v3_args.json").read_text() == args      # the refused resume wrote nothing
    with pytest.raises(ProjectError, match="starts from the v3 checkpoint and keeps its encoder"):
        train_variant(V4_VARIANTS["high_recall"], options, paths)
    # a resume state missing a part, or with a part that does not fit: one line, nothing written
    state = read_resume_state(result.last_path)
    for change, message in (({"scheduler_state_dict": None}, "has no scheduler state; cannot resume from it"),
                            ({"epoch": "1"}, "epoch '1' is not an integer >= 0; cannot resume"),
                            ({"optimizer_state_dict": {"state": {}, "param_groups": []}}, "does not fit this run")):
        torch.save({**state, **change}, result.last_path)
        with pytest.raises(ProjectError, match=f"_last\\.pth: {message}"):
            train_variant(V3_VARIANTS["high_recall"], replace(options, epochs=2, resume=True), paths)
        assert (paths.models_dir / "high_recall_v3_args.json").read_text() == args


@pytest.mark.slow
def test_resume_continues_exactly_where_the_run_stopped(demo, monkeypatch):
    variant = V3_VARIANTS["hard_negative"].with_overrides(model=TINY_SEG)
    options = TrainOptions(keep_last=True, epochs=2, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=8, progress=False)
    straight = read_resume_state(train_variant(variant, options, paths_in(demo, "straight")).last_path)

    real_epoch, calls = lib.training.train._train_one_epoch, []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    paths = paths_in(demo, "stopped")
    monkeypatch.setattr(lib.training.train, "_train_one_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_variant(variant, options, paths)
    monkeypatch.setattr(lib.training.train, "_train_one_epoch", real_epoch)
    resumed = read_resume_state(train_variant(variant, replace(options, resume=True), paths).last_path)
    assert resumed["epoch"] == 2 and [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert list(pd.read_csv(paths.models_dir / "hard_negative_v3_history.csv")["epoch"]) == [1, 2]   # continued
    assert resumed["loss"] == straight["loss"]
    for key, value in straight["model_state_dict"].items():
        assert torch.equal(value, resumed["model_state_dict"][key]), key


def test_classifier_smoke_run_selects_on_auc(demo):
    variant = CLASSIFIER.with_overrides(model={"arch": "classifier", "encoder": "resnet18", "in_channels": 3})
    options = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=12, progress=False)
    result = train_variant(variant, options, paths_in(demo, "cls"))
    metrics = result.history[0]
    assert set(metrics) >= {"auc", "accuracy", "precision", "recall", "val_loss"}
    assert result.best_path.name == "binary_classifier_best.safetensors"
    model, checkpoint = load_model(result.best_path)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2,)


@pytest.mark.slow
def test_train_v3_script_end_to_end(demo):
    root = demo / "script"
    result = run_script("script_1_train_v3.py", "--model", "enhanced_aug", "--epochs", "1", "--img-size", "64",
                        "--limit", "8", "--workers", "0", "--encoder", "resnet18", "--encoder-weights", "none",
                        "--no-progress", "--data-dir", demo / "data", "--models-dir", root / "models",
                        "--logs-dir", root / "logs", cwd=demo)
    assert result.returncode == 0, result.stderr[-2000:]
    config = read_checkpoint(root / "models" / "enhanced_aug_v3_best.safetensors")["model_config"]
    assert config["encoder"] == "resnet18" and config["arch"] == "attention_fpn"      # --encoder, the variant's arch
    log_text = next((root / "logs").glob("script_1_train_v3_*.log")).read_text()
    assert "enhanced_aug_v3 epoch 1/1 | train loss" in log_text

    bad = run_script("script_1_train_v3.py", "--model", "enhanced_aug", "--img-size", "100",
                     "--encoder-weights", "none", "--data-dir", demo / "data", "--models-dir", root / "m2",
                     "--logs-dir", root / "logs", cwd=demo)
    assert bad.returncode == 1 and "must be a multiple of 32" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_script("script_1_train_v3.py", "--model", "enhanced_aug", "--encoder", "resnet-eighteen",
                     "--data-dir", demo / "data", "--models-dir", root / "m2", "--logs-dir", root / "logs", cwd=demo)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --encoder resnet-eighteen: unknown encoder")


def test_v4_starts_from_the_v3_checkpoint_with_the_v4_recipe(own_demo, caplog):
    from lib.errors import ProjectError
    from lib.models.variants import V4_VARIANTS
    from lib.paths import HARD_NEGATIVES_FILE
    from lib.training.datasets import write_hard_negatives
    from lib.training.train import require_hard_negatives

    paths = paths_in(own_demo, "v4")
    options = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none", limit=8,
                           progress=False)
    v4 = V4_VARIANTS["highres_no_ela"]
    assert (v4.stage, v4.init_from, v4.loss_config.fp_penalty, v4.weights.hard_negative) == ("v4", "v3", 4.0, 5.0)
    with pytest.raises(ProjectError, match="script_1_train_v3.py --model highres_no_ela"):
        train_variant(v4, options, paths)
    v3 = train_variant(V3_VARIANTS["highres_no_ela"].with_overrides(model=TINY_SEG), options, paths)

    with pytest.raises(ProjectError, match="find_hard_negatives.py --stage v3"):
        require_hard_negatives(paths)
    write_hard_negatives(paths.data_dir / HARD_NEGATIVES_FILE, [], "none found")
    with caplog.at_level(logging.WARNING):
        require_hard_negatives(paths)
    assert "lists no hard negatives" in caplog.text

    # learning rate 0: the v4 weights are the v3 weights it started from (BatchNorm statistics aside)
    result = train_variant(v4, replace(options, lr=0.0), paths)
    assert result.best_path.name == "highres_no_ela_v4_best.safetensors"
    start, _ = load_model(v3.best_path)
    tuned, checkpoint = load_model(result.best_path)
    assert checkpoint["model_config"] == TINY_SEG
    for (name, a), (_, b) in zip(start.named_parameters(), tuned.named_parameters()):
        assert torch.equal(a, b), name
    recipe = json.loads((paths.models_dir / "highres_no_ela_v4_args.json").read_text())["variant"]
    assert recipe["loss_config"]["fp_penalty"] == 4.0 and recipe["init_from"] == "v3"


@pytest.mark.slow
def test_train_v4_script_needs_its_inputs(demo):
    root = demo / "v4script"
    common = ["--model", "enhanced_aug", "--epochs", "1", "--img-size", "64", "--limit", "8", "--workers", "0",
              "--no-progress", "--data-dir", demo / "data", "--models-dir", root / "models",
              "--logs-dir", root / "logs"]
    assert not (demo / "data" / "hard_negative_ids.txt").exists()     # no test leaves one in the shared data
    missing = run_script("script_3_train_v4.py", *common, cwd=demo)
    assert missing.returncode == 1 and "find_hard_negatives.py --stage v3" in missing.stderr
    assert "Traceback" not in missing.stderr
    no_v3 = run_script("script_3_train_v4.py", *common, "--no-hard-negatives", cwd=demo)
    assert no_v3.returncode == 1 and "script_1_train_v3.py --model enhanced_aug" in no_v3.stderr
    assert "Traceback" not in no_v3.stderr


@pytest.mark.slow
def test_specialist_trains_on_small_forgeries_with_hard_negatives_and_joins_the_predictor(own_demo):
    from lib.data.manifest import load_manifest
    from lib.inference.infer import load_predictor
    from lib.models.variants import SPECIALIST
    from lib.paths import HARD_NEGATIVES_FILE
    from lib.training.datasets import write_hard_negatives

    demo = own_demo
    root = demo / "specialist"
    manifest = load_manifest(Paths(demo / "data", root, root), progress=False)
    authentic = sorted(manifest.loc[manifest["label"] == 0, "image_id"])[:2]
    write_hard_negatives(demo / "data" / HARD_NEGATIVES_FILE, authentic)
    result = run_script("script_4_small_specialist.py", "--max-fraction", "0.05", "--epochs", "1",
                        "--img-size", "64", "--workers", "0", "--encoder-weights", "none", "--no-progress",
                        "--sample-crops", "4", "--data-dir", demo / "data", "--models-dir", root / "models",
                        "--logs-dir", root / "logs", cwd=demo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{SPECIALIST.name}: best val score" in result.stdout
    info = json.loads((root / "models" / "small_forgery_specialist_args.json").read_text())
    assert info["hard_negatives"] == 2                        # the mined file was read
    assert info["variant"]["loss_config"]["focal_alpha"] == 0.85 and info["variant"]["small"]["below"] == 0.05
    small = manifest[(manifest["label"] == 1) & (manifest["forged_fraction"] < 0.05)]
    log_text = next((root / "logs").glob("script_4_small_specialist_*[0-9].log")).read_text()
    assert "training images with a forgery under 5.0% of the image" in log_text
    assert next((root / "logs").glob("*_crops.png")).stat().st_size > 0
    assert 0 < info["train_images"] < len(manifest) and len(small)
    segmenter = save_tiny_segmenter(root / "models" / "tiny.safetensors")
    assert load_predictor(root / "models", "cpu", ensemble=[str(segmenter)]).specialist is not None
    assert load_predictor(root / "models", "cpu", ensemble=[str(segmenter)], use_specialist=False).specialist is None


def test_specialist_refuses_without_enough_small_forgeries(demo):
    from lib.errors import ProjectError
    from lib.models.variants import SPECIALIST, SmallForgeries
    from lib.training.train import training_rows

    few = SPECIALIST.with_overrides(small=SmallForgeries(below=1e-6))
    with pytest.raises(ProjectError, match=r"only 0 training image\(s\) have a forgery under 0.0% .* --max-fraction"):
        training_rows(few, TrainOptions(progress=False), paths_in(demo, "few"))


# a one-epoch run of a tiny enhanced_aug_v3 on 8 images: the runs-and-their-files tests below
TINY_RUN = V3_VARIANTS["enhanced_aug"].with_overrides(model=TINY_SEG)
TINY_OPTIONS = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none", limit=8,
                            progress=False)


def test_a_new_run_never_replaces_an_earlier_one_silently(demo, caplog, monkeypatch):
    from lib.errors import ProjectError

    variant, options = TINY_RUN, TINY_OPTIONS
    paths = paths_in(demo, "twice")
    first = train_variant(variant, options, paths)
    before = first.best_path.read_bytes()
    with pytest.raises(ProjectError, match=r"enhanced_aug_v3_best.safetensors: an earlier enhanced_aug_v3 run is there "
                                           r"\(best val score .* at epoch 1\); --resume continues it, --overwrite"):
        train_variant(variant, options, paths)
    assert first.best_path.read_bytes() == before                  # refused: untouched
    assert not first.last_path.exists()                            # a finished run's resume state is removed

    # an --overwrite interrupted before its first checkpoint leaves the earlier run in place
    files = {p.name: p.read_bytes() for p in paths.models_dir.iterdir() if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(lib.training.train, "_train_one_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train_variant(variant, replace(options, overwrite=True), paths)
    assert {p.name: p.read_bytes() for p in paths.models_dir.iterdir() if p.is_file()} == files   # untouched
    assert not (paths.models_dir / "previous").exists() and first.best_path.is_file()

    caplog.set_level(logging.INFO)
    train_variant(variant, replace(options, overwrite=True, seed=7), paths)
    archived = list((paths.models_dir / "previous").glob("enhanced_aug_v3_*"))
    assert len(archived) == 1
    assert sorted(p.name for p in archived[0].iterdir()) == ["enhanced_aug_v3_args.json",
                                                             "enhanced_aug_v3_best.safetensors",
                                                             "enhanced_aug_v3_curves.png",
                                                             "enhanced_aug_v3_history.csv"]
    assert (archived[0] / "enhanced_aug_v3_best.safetensors").read_bytes() == before   # kept, not deleted
    assert re.search(r"--overwrite: the earlier enhanced_aug_v3 run \(\d+ MB\) moved to .*previous/enhanced_aug_v3_",
                     caplog.text)
    time.sleep(1.1)                              # the folders are named by the second
    train_variant(variant, replace(options, overwrite=True, seed=8), paths)
    assert len(list((paths.models_dir / "previous").glob("enhanced_aug_v3_*"))) == 1   # the newest (--keep-previous 1)
    assert "1 older one(s) deleted (--keep-previous 1)" in caplog.text


def test_a_run_that_stopped_before_its_first_checkpoint_does_not_block_the_next(demo, caplog):
    caplog.set_level(logging.INFO)
    paths = paths_in(demo, "stopped")
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    (paths.models_dir / "enhanced_aug_v3_args.json").write_text("{}")      # what a crash in epoch 1 leaves
    result = train_variant(TINY_RUN, TINY_OPTIONS, paths)                    # a plain re-run: no --overwrite
    assert result.best_path.is_file() and not (paths.models_dir / "previous").exists()
    assert "removed enhanced_aug_v3_args.json, left by an earlier enhanced_aug_v3 run that stopped before its first " \
           "checkpoint" in caplog.text


@pytest.mark.slow
def test_the_best_checkpoint_is_never_replaced_by_a_worse_one(demo, monkeypatch):
    scores = iter([0.6, 0.4, 0.5, 0.3])

    def scripted(*args, **kwargs):
        return {"val_loss": 1.0, "score": next(scores)}

    tasks = lib.training.train._TASKS
    monkeypatch.setitem(tasks, "segmentation", (tasks["segmentation"][0], scripted))
    variant = V3_VARIANTS["high_recall"].with_overrides(model=TINY_SEG)
    options = TrainOptions(keep_last=True, epochs=3, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=8, progress=False)
    paths = paths_in(demo, "worse")
    result = train_variant(variant, options, paths)
    best = read_checkpoint(result.best_path)
    assert (best["epoch"], best["best_score"]) == (1, 0.6) and result.best_score == 0.6
    # resumed for a 4th epoch that scores worse still: the best stays epoch 1's
    resumed = train_variant(variant, replace(options, epochs=4, resume=True), paths)
    assert read_checkpoint(resumed.best_path)["epoch"] == 1 and resumed.best_score == 0.6


@pytest.mark.slow
def test_a_resume_takes_the_best_score_from_the_best_checkpoint(demo, monkeypatch):
    """Killed after epoch 2's best checkpoint was written but before its resume state: the resume
    state says epoch 1 (score 0.4), the best checkpoint epoch 2 (0.6). The resumed epoch 2 scores
    0.5 (another draw of augmentations would): it must not replace the better best."""
    scores = iter([0.4, 0.6, 0.5, 0.45])

    def scripted(*args, **kwargs):
        return {"val_loss": 1.0, "score": next(scores)}

    real_save = lib.training.train.save_resume_state

    def killed_at_epoch_2(path, *args, **fields):
        if fields["epoch"] == 2:
            raise KeyboardInterrupt
        real_save(path, *args, **fields)

    tasks = lib.training.train._TASKS
    monkeypatch.setitem(tasks, "segmentation", (tasks["segmentation"][0], scripted))
    monkeypatch.setattr(lib.training.train, "save_resume_state", killed_at_epoch_2)
    variant = V3_VARIANTS["high_recall"].with_overrides(model=TINY_SEG)
    options = TrainOptions(keep_last=True, epochs=3, img_size=64, batch_size=4, workers=0, encoder_weights="none",
                           limit=8, progress=False)
    paths = paths_in(demo, "kill_between")
    with pytest.raises(KeyboardInterrupt):
        train_variant(variant, options, paths)
    monkeypatch.setattr(lib.training.train, "save_resume_state", real_save)
    assert read_resume_state(paths.models_dir / "high_recall_v3_last.pth")["epoch"] == 1
    resumed = train_variant(variant, replace(options, resume=True), paths)
    best = read_checkpoint(resumed.best_path)
    assert (best["epoch"], best["best_score"], resumed.best_score) == (2, 0.6, 0.6)
    assert [h["score"] for h in read_resume_state(resumed.last_path)["history"]] == [0.4, 0.5, 0.45]


def test_tensorboard_without_the_package_is_one_clear_line(demo, monkeypatch):
    from lib.errors import ProjectError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)      # as if not installed
    variant = V3_VARIANTS["high_recall"].with_overrides(model=TINY_SEG)
    options = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none", limit=8,
                           progress=False, tensorboard=True)
    with pytest.raises(ProjectError, match="--tensorboard needs the tensorboard package: pip install tensorboard"):
        train_variant(variant, options, paths_in(demo, "board_missing"))


def test_tensorboard_events_are_written_when_asked(demo):
    pytest.importorskip("tensorboard")
    variant = V3_VARIANTS["high_recall"].with_overrides(model=TINY_SEG)
    options = TrainOptions(epochs=1, img_size=64, batch_size=4, workers=0, encoder_weights="none", limit=8,
                           progress=False, tensorboard=True)
    paths = paths_in(demo, "board")
    train_variant(variant, options, paths)
    assert list((paths.logs_dir / "tensorboard" / "high_recall_v3").glob("events.out.tfevents.*"))
