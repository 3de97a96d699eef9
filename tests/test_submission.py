"""submission.csv: annotations from masks, atomic sorted writes, long RLE fields, the validator."""
import csv

import numpy as np
import pandas as pd
import pytest

from lib.competition import submission as sub_mod
from lib.competition.rle import rle_decode_instances
from lib.competition.submission import (annotation_from_instances, image_shapes, read_submission, sort_case_ids,
                                        validate_frame, validate_submission_file, write_submission)
from lib.errors import SubmissionError
from tests.helpers import box_mask, make_layout


def test_annotation_from_instances_drops_empty_ones():
    a, b = box_mask(6, 6, (0, 2, 0, 2), (3, 5, 3, 5)).astype(bool)
    assert annotation_from_instances([]) == "authentic"
    assert annotation_from_instances([np.zeros((6, 6))]) == "authentic"
    text = annotation_from_instances([a, np.zeros((6, 6)), b])
    assert text.count(";") == 1
    back = rle_decode_instances(text, (6, 6))
    assert np.array_equal(back[0], a) and np.array_equal(back[1], b)


def test_case_ids_sort_numerically():
    assert sort_case_ids(["10", "9", "100"]) == ["9", "10", "100"]
    assert sort_case_ids(["b", "a10", "a9"]) == ["a10", "a9", "b"]


def test_write_then_read_round_trip_sorted(tmp_path):
    shapes = {"12": (6, 6), "3": (6, 6)}
    annotations = {"12": "[1, 4];[20, 2]", "3": "authentic"}
    path = tmp_path / "submission.csv"
    write_submission(annotations, path, shapes)
    lines = path.read_text().splitlines()
    assert lines[0] == "case_id,annotation"
    assert lines[1:] == ["3,authentic", '12,"[1, 4];[20, 2]"']
    frame = read_submission(path)
    assert dict(zip(frame["case_id"], frame["annotation"])) == annotations


def test_invalid_submission_is_not_written(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("case_id,annotation\n1,authentic\n")
    with pytest.raises(SubmissionError, match="not written"):
        write_submission({"1": "[5, 1, 1, 1]"}, path, {"1": (6, 6)})
    assert path.read_text() == "case_id,annotation\n1,authentic\n"      # old file untouched
    with pytest.raises(SubmissionError, match="no row for this test image"):
        write_submission({"1": "authentic"}, path, {"1": (6, 6), "2": (6, 6)})
    assert list(tmp_path.iterdir()) == [path]                           # no temporary left over


def test_crash_mid_write_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "submission.csv"
    write_submission({"1": "authentic"}, path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(sub_mod.csv, "writer", boom)
    with pytest.raises(RuntimeError):
        write_submission({"1": "[1, 1]"}, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_rle_longer_than_csv_field_limit_survives_3000x3000(tmp_path):
    h = w = 3000
    mask = np.zeros((h, w), bool)
    mask[::8, ::4] = True           # many short runs: an RLE far past 131,072 characters
    annotation = annotation_from_instances([mask])
    assert len(annotation) > 131_072 * 10
    path = tmp_path / "submission.csv"
    write_submission({"1": annotation, "2": "authentic"}, path, {"1": (h, w), "2": (h, w)})
    frame = read_submission(path)
    assert frame["annotation"][0] == annotation
    with open(path, newline="") as fh:          # the csv module too (limit raised in lib.fileio)
        rows = list(csv.reader(fh))
    assert rows[1][1] == annotation
    assert np.array_equal(rle_decode_instances(frame["annotation"][0], (h, w))[0], mask)
    assert validate_submission_file(path, solution=None) == []


def frame(rows):
    return pd.DataFrame(rows, columns=["case_id", "annotation"])


def test_validator_reports_each_problem():
    shapes = {"1": (10, 10), "2": (10, 10), "3": (10, 10)}
    problems = validate_frame(frame([
        ("1", "[1, 2, 3]"),          # odd
        ("2", "[95, 10]"),           # past the 100 pixels
        ("2", "authentic"),          # duplicate
        ("4", "authentic"),          # not a test image
        ("5", ""),                   # empty annotation
        ("6", "[1, 2];[]"),          # empty instance
    ]), shapes)
    text = "\n".join(problems)
    assert "case 1, instance 1: odd number" in text
    assert "case 2, instance 1: run ends at pixel 104, past the 10x10 image" in text
    assert "case 2: duplicated row" in text
    assert "case 3: no row for this test image" in text
    assert "case 4: not a test image" in text
    assert "case 5: empty annotation" in text
    assert "case 6, instance 2: empty instance" in text


def test_validator_accepts_a_good_submission():
    assert validate_frame(frame([("1", "[1, 100]"), ("2", "authentic")]),
                          {"1": (10, 10), "2": (10, 10)}) == []


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("id,annotation\n1,authentic\n", "header is 'id,annotation'"),
    ("case_id,annotation,extra\n1,authentic,x\n", "header"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(SubmissionError, match=message):
        read_submission(path)
    with pytest.raises(SubmissionError, match="file not found"):
        read_submission(tmp_path / "missing.csv")


def test_image_shapes_from_a_test_folder(tmp_path):
    layout = make_layout(tmp_path)
    assert image_shapes(tmp_path / "test_images") == layout["test"]
    with pytest.raises(SubmissionError, match="not found"):
        image_shapes(tmp_path / "nowhere")
