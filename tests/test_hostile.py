"""The hostile folder (lib/tools/hostile.py: pixel bombs, 1 px images, corrupt files, a name that is
not UTF-8, links good and bad, a folder and a pipe named like images) through every reader that
writes a submission: one row per image file, one warning per bad entry, exit 0, a valid CSV."""
import os

import pytest

from lib.competition.submission import read_submission, validate_submission_file
from lib.tools.hostile import EXPECTED, write_hostile_folder
from tests.helpers import run_script, save_tiny_segmenter


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return write_hostile_folder(tmp_path_factory.mktemp("hostile") / "test_images")


def assert_every_file_answered(result, submission, folder, expected=EXPECTED):
    """Exit 0, no traceback, a valid submission with one row per image file (the unreadable ones
    authentic), and one warning line for each unreadable file and each skipped entry."""
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert validate_submission_file(submission, test_dir=folder) == []
    rows = read_submission(submission).set_index("case_id")["annotation"]
    answered = {os.path.splitext(name)[0]: kind for name, kind in expected.items() if kind != "skipped"}
    assert sorted(rows.index) == sorted(answered)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    for name, kind in expected.items():
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        said = [line for line in warnings if f"/{shown}:" in line]
        assert len(said) == (kind != "row"), (name, said)
        if kind == "unreadable":
            assert rows[os.path.splitext(name)[0]] == "authentic"
    assert sum(kind == "skipped" for kind in expected.values()) == 5


def test_the_matcher_answers_for_every_file_of_the_hostile_folder(hostile, tmp_path):
    output = tmp_path / "matcher.csv"
    result = run_script("match_copy_move.py", "--input-dir", hostile, "--output", output, "--logs-dir",
                        tmp_path / "logs", "--models-dir", tmp_path / "models", "--no-progress", cwd=tmp_path)
    assert_every_file_answered(result, output, hostile)
    assert read_submission(output).set_index("case_id").loc["good_copy", "annotation"] != "authentic"
    assert "16 rows, 1 forged, 15 authentic, 5 of them unreadable (one warning each above)" in result.stdout


@pytest.mark.slow
def test_the_predictor_answers_for_every_file_of_the_hostile_folder(hostile, tmp_path):
    models = tmp_path / "models"
    save_tiny_segmenter(models / "highres_no_ela_v3_best.safetensors", img_size=64, seed=0)
    output = tmp_path / "submission.csv"
    result = run_script("script_5_predict.py", "--input-dir", hostile, "--output", output, "--models-dir", models,
                        "--logs-dir", tmp_path / "logs", "--stage", "v3", "--fusion", "first", "--no-progress",
                        cwd=tmp_path)
    assert_every_file_answered(result, output, hostile)
    again = run_script("script_5_predict.py", "--input-dir", hostile, "--output", output, "--models-dir", models,
                       "--logs-dir", tmp_path / "logs", "--stage", "v3", "--fusion", "first", "--no-progress",
                       cwd=tmp_path)                 # from the cache: the same answers and warnings
    assert_every_file_answered(again, output, hostile)
    assert "from the cache" in again.stderr
