"""bin/ scripts as a user runs them: from any working directory, one-line errors, right exit codes."""
import json
import subprocess
import sys

import numpy as np

from lib.submission import write_csv
from tests.helpers import ROOT, make_layout, run_script

SCRIPTS = sorted(p.name for p in (ROOT / "bin").glob("*.py") if not p.name.startswith("_"))


# libraries that take seconds to import: no script may import them before its arguments are parsed
HEAVY = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "albumentations", "sklearn", "scipy",
         "pandas", "matplotlib")
HELP_RUNNER = """
import contextlib, io, json, runpy, sys
heavy, answers = tuple(json.loads(sys.argv[1])), {}
for path in sys.argv[2:]:
    sys.argv, text, code = [path, "--help"], io.StringIO(), None
    with contextlib.redirect_stdout(text):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
    answers[path] = {"code": code, "usage": "usage:" in text.getvalue(),
                     "heavy": [m for m in heavy if m in sys.modules]}
print(json.dumps(answers))
"""


def test_every_script_answers_help_at_once_from_another_directory(tmp_path):
    """Every bin/ script prints its usage and exits 0 from any directory, having imported none of
    the heavy libraries: --help (and a mistyped flag) answers in well under a second. One
    interpreter runs them all, in turn, so the first script that imports torch is named."""
    paths = [str(ROOT / "bin" / name) for name in SCRIPTS]
    result = subprocess.run([sys.executable, "-c", HELP_RUNNER, json.dumps(HEAVY), *paths], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    assert list(answers) == paths
    for path, answer in answers.items():
        assert answer["code"] in (0, None) and answer["usage"], (path, answer)
        assert answer["heavy"] == [], f"{path} imports {answer['heavy']} before parsing its arguments"


def test_check_submission_accepts_valid_and_rejects_invalid(tmp_path):
    make_layout(tmp_path)
    good = tmp_path / "good.csv"
    write_csv(good, ["case_id", "annotation"], [("7", "authentic"), ("100", "[1, 10];[50, 5]")])
    result = run_script("check_submission.py", good, "--data-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and "2 rows (1 forged, 1 authentic)" in result.stdout

    bad = tmp_path / "bad.csv"
    write_csv(bad, ["case_id", "annotation"], [("7", "[500, 2]"), ("8", "authentic")])
    result = run_script("check_submission.py", bad, "--test-dir", tmp_path / "test_images", cwd=tmp_path)
    assert result.returncode == 1
    assert "case 7, instance 1: run ends at pixel 501, past the 20x25 image" in result.stdout
    assert "case 100: no row for this test image" in result.stdout
    assert "case 8: not a test image" in result.stdout
    assert "INVALID: 3 problem(s)" in result.stdout


def test_missing_file_is_one_line_error_not_traceback(tmp_path):
    result = run_script("check_submission.py", tmp_path / "nope.csv", "--test-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.csv'}: file not found"
    assert "Traceback" not in result.stderr


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


def test_demo_solution_scores_one_and_all_authentic_scores_the_authentic_fraction(tmp_path):
    result = run_script("make_demo_data.py", "--out", "demo", "--n-forged", "6", "--n-test", "10",
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
                        "--test-dir", demo / "test_images", cwd=tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout
