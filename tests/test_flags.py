"""The flags declared once on the option dataclasses: parsing, the round trip through to_argv,
old spellings, and the scripts' vocabulary."""
import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from lib.flags import add_args, add_renamed, flag, from_args, record, to_argv
from lib.options import PostConfig, PredictorOptions, TrainOptions, add_inference_args, add_training_args


@dataclass
class Example:
    size: int = flag(4, "--size", "a size")
    name: str | None = flag(None, "--name", "a name")
    path: Path | None = flag(None, "--path", "a path", type=Path)
    fast: bool = flag(True, "--no-fast", "slowly")
    loud: bool = flag(False, "--loud", "loudly")
    tags: list[str] | None = flag(None, "--tag", "a tag (repeatable)", append=True)
    kind: str = flag("a", "--kind", "a kind", choices=("a", "b"), aliases=("--type",))
    hidden: int = 7                  # not a flag


def parse(cls, argv, **kwargs):
    parser = argparse.ArgumentParser()
    add_args(cls, parser, **kwargs)
    return parser.parse_args(argv)


def test_a_flag_field_parses_to_its_field_name_and_back():
    args = parse(Example, ["--size", "8", "--name", "x", "--path", "a/b", "--no-fast", "--loud", "--tag", "t1",
                           "--tag", "t2", "--kind", "b"])
    example = from_args(Example, args)
    assert example == Example(8, "x", Path("a/b"), False, True, ["t1", "t2"], "b")
    assert from_args(Example, parse(Example, to_argv(example))) == example
    assert to_argv(Example()) == [] and from_args(Example, parse(Example, [])) == Example()
    assert record(example) == {"size": 8, "name": "x", "path": Path("a/b"), "fast": False, "loud": True,
                               "tags": ["t1", "t2"], "kind": "b"}


@pytest.mark.parametrize("cls, values", [
    (PostConfig, dict(classifier_threshold=0.4, seg_threshold=0.3, min_area=50, adaptive=False,
                      instance_mode="similar", fusion="first", matcher_threshold=0.6)),
    (TrainOptions, dict(epochs=3, lr=0.001, img_size=256, workers=0, seed=1, device="cpu", encoder_weights="none",
                        limit=5, overwrite=True, use_hard_negatives=False, progress=False, amp="off",
                        channels_last=False)),
    (PredictorOptions, dict(ensemble=["a.safetensors:2", "b.safetensors"], stage="v3", tta=False, classifier=False,
                            batch_size=2, match_workers=4, matcher="v1", match_verifier=Path("v.json"), cache=False)),
])
def test_every_option_set_round_trips_through_its_command_line(cls, values):
    """What the full pipeline passes to a script (to_argv) rebuilds the same options there."""
    options = cls(**values)
    assert from_args(cls, parse(cls, to_argv(options))) == options


def test_the_scripts_groups_parse_to_the_dataclasses():
    parser = argparse.ArgumentParser()
    add_training_args(parser)
    options = from_args(TrainOptions, parser.parse_args(["--epochs", "2", "--no-augmented", "--compile"]))
    assert (options.epochs, options.use_augmented, options.compile, options.seed) == (2, False, True, 42)
    parser = argparse.ArgumentParser()
    add_inference_args(parser)
    args = parser.parse_args(["--no-tta", "--seg-threshold", "0.3", "--instances", "components"])
    assert not from_args(PredictorOptions, args).tta
    assert from_args(PostConfig, args) == PostConfig(seg_threshold=0.3, instance_mode="components")


def test_an_old_spelling_still_works_hidden_and_warned(capsys):
    parser = argparse.ArgumentParser()
    add_args(Example, parser)
    assert from_args(Example, parser.parse_args(["--type", "b"])).kind == "b"
    assert "--type is now --kind" in capsys.readouterr().err
    assert "--type" not in parser.format_help() and "--kind" in parser.format_help()


def test_help_shows_the_default_once():
    parser = argparse.ArgumentParser()
    add_args(Example, parser)
    text = " ".join(parser.format_help().split())
    assert "a size (default 4)" in text and "a name (default" not in text


def test_only_and_defaults_select_and_override():
    args = parse(Example, ["--no-fast"], only=("size", "fast"), defaults={"size": 9})
    assert vars(args) == {"size": 9, "fast": False}
    with pytest.raises(SystemExit):
        parse(Example, ["--name", "x"], only=("size",))


def test_an_old_spelling_of_a_repeatable_flag_takes_several_values(capsys):
    """script_3's --models a b (nargs +) became --model a --model b (repeatable), like script_1's."""
    parser = argparse.ArgumentParser()
    add_renamed(parser, "--models", "--model", action="append", choices=("a", "b"), old_nargs="+")
    assert parser.parse_args(["--models", "a", "b"]).model == ["a", "b"]
    assert parser.parse_args(["--model", "b", "--models", "a"]).model == ["b", "a"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--models", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err


def test_a_zero_default_is_shown():
    parser = argparse.ArgumentParser()
    add_args(Example, parser, defaults={"size": 0})
    assert "a size (default 0)" in " ".join(parser.format_help().split())


def test_given_dests_are_the_flags_spelled_out_in_any_spelling():
    from lib.flags import given_dests
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_args(Example, parser)
    add_renamed(parser, "--out", "--output-dir", default=None)
    assert given_dests(parser, []) == set()
    assert given_dests(parser, ["--kind", "b", "--no-fast"]) == {"kind", "fast"}
    assert given_dests(parser, ["--type=b", "--out", "x"]) == {"kind", "output_dir"}
    assert given_dests(parser, ["--", "--kind"]) == set()
