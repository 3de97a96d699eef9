"""bin/ scripts as a user runs them: from any working directory, one-line errors, right exit codes."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.competition.submission import write_csv
from tests.helpers import ROOT, make_layout, run_script

SCRIPTS = sorted(p.name for p in (ROOT / "bin").glob("*.py") if not p.name.startswith("_"))


# libraries that take seconds to import: no script may import them before its arguments are parsed
HEAVY = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "albumentations", "sklearn", "scipy",
         "pandas", "matplotlib")
HELP_RUNNER = """
import contextlib, io, json, runpy, sys
heavy, answers = tuple(json.loads(sys.argv[1])), []
for path, *argv in json.loads(sys.argv[2]):
    sys.argv, out, err, code = [path, *argv, "--help"], io.StringIO(), io.StringIO(), None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
    answers.append({"path": path, "code": code, "usage": "usage:" in out.getvalue(), "stderr": err.getvalue(),
                    "heavy": [m for m in heavy if m in sys.modules]})
print(json.dumps(answers))
"""


# the same, parsing the arguments as given (no --help: required flags are checked) and stopping there
PARSE_RUNNER = HELP_RUNNER.replace('"--help"]', ']').replace("answers = tuple(json.loads(sys.argv[1])), []", """\
answers = tuple(json.loads(sys.argv[1])), []
import argparse
parse = argparse.ArgumentParser.parse_args
def parse_and_stop(self, *a, **k):
    print(json.dumps({k: str(v) for k, v in vars(parse(self, *a, **k)).items()}))
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = parse_and_stop""")


def help_of(runs: list[list[str]], cwd: Path, runner: str = HELP_RUNNER) -> list[dict]:
    """`bin/<script> [args] --help` for each [script, *args] of `runs`, in one interpreter, in turn
    (with PARSE_RUNNER: the arguments parsed as given, and nothing run)."""
    runs = [[str(ROOT / "bin" / script), *map(str, args)] for script, *args in runs]
    result = subprocess.run([sys.executable, "-c", runner, json.dumps(HEAVY), json.dumps(runs)], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    assert [a["path"] for a in answers] == [run[0] for run in runs]
    return answers


def test_every_script_answers_help_at_once_from_another_directory(tmp_path):
    """Every bin/ script prints its usage and exits 0 from any directory, having imported none of
    the heavy libraries: --help (and a mistyped flag) answers in well under a second. One
    interpreter runs them all, in turn, so the first script that imports torch is named."""
    for answer in help_of([[name] for name in SCRIPTS], tmp_path):
        path = answer["path"]
        assert answer["code"] in (0, None) and answer["usage"], (path, answer)
        assert answer["heavy"] == [], f"{path} imports {answer['heavy']} before parsing its arguments"


# each script's earlier spellings of its flags (README, "Flags"): accepted for one release, with a warning;
# the arguments are enough to parse (required ones given, in the old spelling where there is one)
OLD_SPELLINGS = [
    ("check_submission.py", ["submission.csv", "--test-dir", "x"], [("--test-dir", "--input-dir")]),
    ("full_pipeline.py", ["--test-dir", "x"], [("--test-dir", "--input-dir")]),
    ("make_kaggle_package.py", ["--output", "x"], [("--output", "--output-dir")]),
    ("make_benchmark.py", ["--out", "x", "--workers", "2"], [("--out", "--output-dir"), ("--workers", "--jobs")]),
    ("make_demo_data.py", ["--out", "x"], [("--out", "--output-dir")]),
    ("evaluate_matcher.py", ["--out-dir", "x", "--workers", "1"],
     [("--out-dir", "--output-dir"), ("--workers", "--match-workers")]),
    ("generate_authentic_augmented.py", ["--multiplier", "2", "--workers", "1"],
     [("--multiplier", "--copies"), ("--workers", "--jobs")]),
    ("generate_forged_augmented.py", ["--workers", "1"], [("--workers", "--jobs")]),
    ("benchmark_inference.py", ["--limit", "4"], [("--limit", "--images")]),
    ("benchmark_matcher.py", ["--workers", "1"], [("--workers", "--match-workers")]),
    ("train_match_verifier.py", ["--workers", "1"], [("--workers", "--match-workers")]),
    ("match_copy_move.py", ["--input-dir", "x", "--output", "y.csv", "--workers", "1"],
     [("--workers", "--match-workers")]),
    ("script_3_train_v4.py", ["--models", "highres_no_ela", "hard_negative"], [("--models", "--model")]),
]


@pytest.mark.parametrize("runner", [HELP_RUNNER, PARSE_RUNNER], ids=["--help", "parsed"])
def test_old_spellings_of_flags_are_still_accepted_with_a_warning(tmp_path, runner):
    # parsed as given, a required flag (make_kaggle_package's --output-dir) counts when spelled the old way
    answers = help_of([[script, *args] for script, args, _ in OLD_SPELLINGS], tmp_path, runner)
    for (script, _, renamed), answer in zip(OLD_SPELLINGS, answers):
        assert answer["code"] in (0, None), (script, answer)
        assert answer["usage"] == (runner == HELP_RUNNER), (script, answer)
        warned = [line for line in answer["stderr"].splitlines() if "is now" in line]
        assert warned == [f"warning: {old} is now {new}; the old spelling goes in the next release"
                          for old, new in renamed], (script, answer["stderr"])


def test_a_required_flag_left_out_is_named(tmp_path):
    result = run_script("make_demo_data.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["make_demo_data.py: error: the following arguments are required: "
                                          "--output-dir (--help lists the flags)"]


def test_a_flag_typo_is_one_line_with_the_flag_probably_meant(tmp_path):
    result = run_script("script_1_train_v3.py", "--epoch", "3", "--img-sise", "64", "--zzz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "script_1_train_v3.py: error: unrecognized arguments: --epoch 3 --img-sise 64 --zzz (--epoch: did you mean "
        "--epochs?; --img-sise: did you mean --img-size?) (--help lists the flags)"]


def test_check_submission_accepts_valid_and_rejects_invalid(tmp_path):
    make_layout(tmp_path)
    good = tmp_path / "good.csv"
    write_csv(good, ["case_id", "annotation"], [("7", "authentic"), ("100", "[1, 10];[50, 5]")])
    result = run_script("check_submission.py", good, "--data-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and "2 rows (1 forged, 1 authentic)" in result.stdout

    bad = tmp_path / "bad.csv"
    write_csv(bad, ["case_id", "annotation"], [("7", "[500, 2]"), ("8", "authentic")])
    result = run_script("check_submission.py", bad, "--input-dir", tmp_path / "test_images", cwd=tmp_path)
    assert result.returncode == 1
    assert "case 7, instance 1: run ends at pixel 501, past the 20x25 image" in result.stdout
    assert "case 100: no row for this test image" in result.stdout
    assert "case 8: not a test image" in result.stdout
    assert "INVALID: 3 problem(s)" in result.stdout


def test_missing_file_is_one_line_error_not_traceback(tmp_path):
    result = run_script("check_submission.py", tmp_path / "nope.csv", "--input-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: file not found"
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_score_submission_prints_the_metric(tmp_path):
    solution = tmp_path / "solution.csv"
    write_csv(solution, ["case_id", "annotation", "shape"],
              [("1", "[101, 103]", "[720, 960]"), ("2", "[101, 102]", "[720, 960]"),
               ("3", "[101, 102]", "[720, 960]"), ("4", "authentic", "[720, 960]")])
    submission = tmp_path / "submission.csv"
    write_csv(submission, ["case_id", "annotation"],
              [("1", "[101, 102]"), ("2", "[101, 102]"), ("3", "[101, 102]"), ("4", "[1, 1]")])
    per_row = tmp_path / "rows.csv"
    result = run_script("score_submission.py", submission, "--solution", solution,
                        "--per-row", per_row, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = (204 / 205 + 1 + 1 + 0) / 4
    assert f"score {expected:.4f}" in result.stdout
    assert "TP 3  FP 1  FN 0  TN 0" in result.stdout
    assert per_row.read_text().splitlines()[4] == "4,authentic,forged,0.000000"

    write_csv(submission, ["case_id", "annotation"], [("1", "[1, 2, 3]")])
    result = run_script("score_submission.py", submission, "--solution", solution, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {submission}: case 1, instance 1: odd number")


def test_inspect_data_summarises_layout_and_problems(tmp_path):
    make_layout(tmp_path)
    np.save(tmp_path / "train_masks" / "77.npy", np.ones((1, 3, 3), np.uint8))
    result = run_script("inspect_data.py", "--data-dir", tmp_path, "--logs-dir", tmp_path / "logs",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "forged images with an authentic twin (same case_id): 2 of 4" in result.stdout
    assert "instances per forged image: 1: 3, 2: 1" in result.stdout
    assert "77.npy: mask without an image" in result.stdout
    assert "77.npy: mask without an image (skipped)" in result.stderr
    assert len(list((tmp_path / "logs").glob("inspect_data_*.log"))) == 1


@pytest.mark.slow
def test_demo_solution_scores_one_and_all_authentic_scores_the_authentic_fraction(tmp_path):
    result = run_script("make_demo_data.py", "--output-dir", "demo", "--n-forged", "6", "--n-test", "10",
                        "--n-supplemental", "1", "--max-size", "320", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    demo = tmp_path / "demo"
    solution = demo / "solution.csv"
    result = run_script("score_submission.py", solution, "--solution", solution, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("score 1.0000 | rows 10")

    n_authentic = sum(1 for line in solution.read_text().splitlines()[1:] if ",authentic," in line)
    assert 0 < n_authentic < 10
    result = run_script("score_submission.py", demo / "sample_submission.csv", "--solution", solution,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"score {n_authentic / 10:.4f} | rows 10")

    result = run_script("check_submission.py", demo / "sample_submission.csv",
                        "--input-dir", demo / "test_images", cwd=tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout
