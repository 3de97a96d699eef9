"""What was validated is what runs (lib.inference.tuned): `--fusion auto` runs the settings
validated for the models at hand, checked part by part against them (networks, matcher, split);
without any, the matcher alone; no file is chosen by its modification time."""
import argparse
import json

import pytest

from lib.errors import ProjectError
from lib.flags import from_args, given_dests
from lib.inference.infer import models_key, post_config_from_args
from lib.inference.tuned import TUNED_FILE, TunedKey, check_tuned, read_tuned, split_key, write_tuned
from lib.matching import DEFAULT_VERIFIER, VERIFIER_NAME
from lib.options import AUTO, PostConfig, PredictorOptions, add_inference_args
from tests.helpers import save_tiny_segmenter

TUNED = PostConfig(fusion="first", seg_threshold=0.4, min_area=50, matcher_threshold=0.6)
HELD_OUT = ["1", "2", "3"]


def parse(argv: list[str]) -> tuple[argparse.Namespace, set[str]]:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_inference_args(parser, fusion=AUTO)
    return parser.parse_args(argv), given_dests(parser, argv)


def resolved(models, *argv: str) -> PostConfig:
    args, given = parse(["--stage", "v3", *argv])
    return post_config_from_args(args, models, given)


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    save_tiny_segmenter(folder / "highres_no_ela_v3_best.safetensors", seed=0)
    save_tiny_segmenter(folder / "high_recall_v3_best.safetensors", seed=1)
    return folder


def tune(models, post: PostConfig = TUNED, networks: bool = True, matcher: bool = True) -> None:
    args, _ = parse(["--stage", "v3"])
    write_tuned(models, models_key(from_args(PredictorOptions, args), models, networks, matcher, HELD_OUT), post,
                {"how": "validate_test.py --compare-fusion", "score": 0.61, "images": len(HELD_OUT)})


def test_without_a_tuned_file_auto_is_the_matcher_alone_at_its_verifiers_threshold(models, caplog):
    with caplog.at_level("INFO"):
        config = resolved(models)
    assert config.fusion == "matcher" and config.matcher_threshold is None
    assert f"no tuned post-processing for these models ({models / TUNED_FILE}" in caplog.text


def test_auto_runs_the_tuned_settings_of_these_models(models, caplog):
    tune(models)
    with caplog.at_level("INFO"):
        assert resolved(models) == TUNED
    assert "fusion first" in caplog.text and "score 0.6100 on 3 held-out images" in caplog.text
    assert resolved(models, "--fusion", "network", "--seg-threshold", "0.2").seg_threshold == 0.2   # chosen: as given


@pytest.mark.parametrize("flag", [["--seg-threshold", "0.2"], ["--min-area=10"], ["--matcher-threshold", "0.3"]])
def test_a_threshold_given_with_auto_is_refused_not_mixed_in(models, flag):
    tune(models)
    with pytest.raises(ProjectError, match=f"{flag[0].split('=')[0]} with --fusion auto: .*choose the rule too"):
        resolved(models, *flag)


def change_a_checkpoint(models):
    save_tiny_segmenter(models / "high_recall_v3_best.safetensors", seed=7)


def fit_another_verifier(models):
    text = DEFAULT_VERIFIER.read_text(encoding="utf-8")
    (models / VERIFIER_NAME).write_text(text.replace("{", "{ ", 1), encoding="utf-8")   # other bytes, same trees


@pytest.mark.parametrize("change, argv, part", [
    (change_a_checkpoint, [], "networks"),
    (None, ["--no-tta"], "networks"),
    (None, ["--no-specialist", "--ensemble", "high_recall_v3_best.safetensors"], "networks"),
    (None, ["--matcher", "v2"], "matcher"),
    (fit_another_verifier, [], "matcher"),
], ids=["a checkpoint retrained", "TTA off", "another ensemble", "matcher v2", "another verifier"])
def test_a_tuning_for_other_models_is_refused_naming_what_changed(models, change, argv, part):
    tune(models)
    if change is not None:
        change(models)
    argv = [a if not a.endswith(".safetensors") else str(models / a) for a in argv]
    with pytest.raises(ProjectError) as error:
        resolved(models, *argv)
    message = str(error.value)
    assert message.startswith(f"{models / TUNED_FILE}: tuned for other") and f"({part} changed since" in message
    assert "re-tune: python bin/validate_test.py --compare-fusion --sweep, or choose: --fusion" in message
    assert "\n" not in message


def test_another_held_out_split_is_refused_where_the_split_is_known(models):
    tune(models)
    tuned = read_tuned(models)
    check_tuned(tuned, TunedKey(split=split_key(reversed(HELD_OUT))))          # the same images, in any order
    with pytest.raises(ProjectError, match=r"\(split changed since"):
        check_tuned(tuned, TunedKey(split=split_key(["1", "2", "4"])))


def test_a_matcher_only_tuning_does_not_need_the_networks(models):
    tune(models, PostConfig(fusion="matcher", matcher_threshold=0.7), networks=False)
    change_a_checkpoint(models)
    assert resolved(models).matcher_threshold == 0.7          # the networks were never part of it


def test_nothing_is_chosen_by_modification_time(models, tmp_path):
    tune(models)
    logs = tmp_path / "logs"
    logs.mkdir()
    # what earlier versions read: the newest sweep or fusion comparison in the logs
    (logs / "sweep_20990101_000000.json").write_text(json.dumps({"best": {"fusion": "network", "score": 0.9}}))
    (logs / "fusion_20990101_000000.json").write_text(json.dumps({"best": "union", "table": []}))
    assert resolved(models) == TUNED
    (models / TUNED_FILE).touch()
    assert resolved(models) == TUNED


def test_a_malformed_tuned_file_is_one_line_naming_it(models):
    (models / TUNED_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ProjectError, match=f"{TUNED_FILE}: not a tuned post-processing of validate_test.py"):
        resolved(models)
    (models / TUNED_FILE).write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(ProjectError, match="format 'something else'"):
        resolved(models)


@pytest.mark.parametrize("field, value, message", [
    ("adaptive", "false", "adaptive must be true or false, got 'false'"),
    ("seg_threshold", "0.3", "seg_threshold must be a finite number, got '0.3'"),
    ("min_area", 12.5, "min_area must be an integer, got 12.5"),
    ("matcher_threshold", 2, "thresholds must lie in [0, 1]"),
    ("score", float("inf"), "measured score inf is not a finite number"),
])
def test_a_tuned_setting_of_the_wrong_type_is_one_line_naming_the_field(models, field, value, message):
    tune(models)
    record = json.loads((models / TUNED_FILE).read_text())
    record["measured" if field == "score" else "post"][field] = value
    (models / TUNED_FILE).write_text(json.dumps(record))
    with pytest.raises(ProjectError) as refused:
        resolved(models)
    assert f"{TUNED_FILE}: not a tuned post-processing of validate_test.py ({message})" in str(refused.value)
    (models / TUNED_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ProjectError, match=r"not a tuned post-processing of validate_test.py \(nested too deeply\)"):
        resolved(models)


@pytest.mark.parametrize("weight", ["inf", "nan", "0", "-1"])
def test_an_ensemble_weight_must_be_positive_and_finite(weight):
    from lib.inference.infer import parse_member_spec
    with pytest.raises(ProjectError, match=f"--ensemble m.safetensors:{weight}: the weight must be a positive finite"):
        parse_member_spec(f"m.safetensors:{weight}")


def test_no_checkpoints_here_names_where_they_are(tmp_path, monkeypatch):
    import lib.paths
    from lib.inference.infer import default_ensemble
    root = tmp_path / "repo"
    for name in ("highres_no_ela_v3", "high_recall_v3"):
        (root / "demo" / "models" / f"{name}_best.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (root / "demo" / "models" / f"{name}_best.safetensors").write_bytes(b"")
    monkeypatch.setattr(lib.paths, "ROOT", root)
    with pytest.raises(ProjectError) as refused:
        default_ensemble(root / "models", "v3")
    assert str(refused.value) == (f"{root / 'models'}: no segmentation checkpoints (*_v3_best.safetensors); 2 in "
                                  f"demo/models: pass --models-dir demo/models (or --data-dir demo)")
    for checkpoint in (root / "demo" / "models").iterdir():
        checkpoint.unlink()
    with pytest.raises(ProjectError, match=r"no segmentation checkpoints \(\*_v4_best.safetensors or \*_v3_best"
                                           r".safetensors\); train them first: python bin/script_1_train_v3.py$"):
        default_ensemble(root / "models", "v4")                         # none anywhere: train them
