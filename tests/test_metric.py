"""The competition metric: its own worked values, the authentic rule, Hungarian matching and the excess penalty."""
import numpy as np
import pandas as pd
import pytest

from lib.competition.metric import of1_score, pixel_f1, score_frame, score_image, score_instances, score_row
from lib.competition.rle import rle_encode
from lib.errors import SubmissionError

SHAPE = "[720, 960]"


def frame(annotations, shape=None):
    data = {"case_id": [str(i) for i in range(len(annotations))], "annotation": annotations}
    if shape is not None:
        data["shape"] = [shape] * len(annotations)
    return pd.DataFrame(data)


def score(truth, pred, shape=SHAPE):
    return score_frame(frame(truth, shape), frame(pred))[0].score


# --- the worked values of docs/competition.md (the metric's own doctests) -----------------------

def test_worked_value_all_authentic():
    assert score(["authentic"] * 3, ["authentic"] * 3, "authentic") == 1.0


def test_worked_value_masks_on_authentic_truth():
    assert score(["authentic"] * 3, ["[101, 102]"] * 3, "authentic") == 0.0


def test_worked_value_identical_single_instances():
    assert score(["[101, 102]"] * 3, ["[101, 102]"] * 3) == 1.0


def test_worked_value_one_pixel_short():
    # one row has F1 = 2*102 / (2*102 + 1) = 204/205, the other two are exact
    assert score_row("[101, 103]", "[101, 102]", SHAPE) == pytest.approx(204 / 205)
    assert score(["[101, 103]", "[101, 102]", "[101, 102]"], ["[101, 102]"] * 3) == 0.9983739837398374


def test_worked_value_missing_second_instance():
    # the row with two true instances and one prediction scores (1 + 0) / 2 = 0.5
    truth = ["[101, 102];[300, 100]", "[101, 102]", "[101, 102]"]
    assert score_row(truth[0], "[101, 102]", SHAPE) == 0.5
    assert score(truth, ["[101, 102]"] * 3) == 0.8333333333333334


# --- rules -----------------------------------------------------------------------------------

def test_authentic_versus_mask_scores_zero_both_ways():
    assert score_row("authentic", "[1, 5]", SHAPE) == 0.0
    assert score_row("[1, 5]", "authentic", SHAPE) == 0.0
    assert score_row("authentic", "authentic", "authentic") == 1.0


def masks(*boxes, shape=(40, 40)):
    out = []
    for y0, y1, x0, x1 in boxes:
        m = np.zeros(shape, bool)
        m[y0:y1, x0:x1] = True
        out.append(m)
    return out


def test_hungarian_matching_is_order_free():
    a, b = masks((0, 10, 0, 10), (20, 30, 20, 30))
    assert of1_score([b, a], [a, b]) == 1.0


def test_excess_predictions_are_penalised():
    a, b, c = masks((0, 10, 0, 10), (20, 30, 20, 30), (0, 5, 30, 35))
    assert of1_score([a, b], [a]) == pytest.approx(0.5)
    assert of1_score([a, b, c], [a]) == pytest.approx(1 / 3)


def test_splitting_an_event_into_source_and_copy_halves_the_score():
    # one true instance = source + copy; predicting them as two instances caps at 0.5 x F1
    src, dst = masks((0, 10, 0, 10), (20, 30, 20, 30))
    event = src | dst
    assert of1_score([event], [event]) == 1.0
    split = of1_score([src, dst], [event])
    assert split == pytest.approx(pixel_f1(src, event) * 1 / 2)
    assert split < 0.5


def test_merging_two_events_into_one_prediction_loses_half():
    a, b = masks((0, 10, 0, 10), (20, 30, 20, 30))
    assert of1_score([a | b], [a, b]) == pytest.approx(pixel_f1(a | b, a) / 2)


def test_f1_is_zero_without_overlap_and_matches_formula():
    a, b = masks((0, 10, 0, 10), (5, 15, 0, 10))
    assert pixel_f1(a, np.logical_not(a)) == 0.0
    assert pixel_f1(a, b) == pytest.approx(2 * 50 / (100 + 100))


def test_score_instances_uses_none_or_empty_for_authentic():
    a, = masks((0, 10, 0, 10))
    assert score_instances(None, None) == 1.0
    assert score_instances([], [a]) == 0.0
    assert score_instances([a], None) == 0.0
    assert score_instances(np.stack([a]), np.stack([a])) == 1.0


def test_report_detection_numbers():
    truth = ["authentic", "authentic", "[1, 10]", "[1, 10]", "[1, 10]"]
    pred = ["authentic", "[1, 10]", "[1, 10]", "[1, 5]", "authentic"]
    report, rows = score_frame(frame(truth, "[10, 10]"), frame(pred))
    assert (report.tp, report.fp, report.fn, report.tn) == (2, 1, 1, 1)
    assert report.recall == pytest.approx(2 / 3)
    assert report.fp_rate == pytest.approx(1 / 2)
    assert report.precision == pytest.approx(2 / 3)
    assert report.net == 1
    f1_half = 2 * 5 / (5 + 10)
    assert report.mask_f1 == pytest.approx((1 + f1_half) / 2)
    assert report.score == pytest.approx((1 + 0 + 1 + f1_half + 0) / 5)
    assert list(rows["case_id"]) == [str(i) for i in range(5)]


def test_rows_are_matched_by_case_id_not_position():
    sol = frame(["authentic", "[1, 10]"], "[10, 10]")
    sub = frame(["[1, 10]", "authentic"]).iloc[::-1].reset_index(drop=True)
    sub["case_id"] = ["0", "1"]          # reversed: case 0 -> authentic, case 1 -> mask
    assert score_frame(sol, sub)[0].score == 1.0


def test_missing_extra_and_duplicate_rows_are_errors():
    sol = frame(["authentic", "[1, 10]"], "[10, 10]")
    with pytest.raises(SubmissionError, match="missing rows for case_id 1"):
        score_frame(sol, frame(["authentic"]))
    with pytest.raises(SubmissionError, match="not in the solution"):
        score_frame(sol, frame(["authentic"] * 3))
    dup = pd.DataFrame({"case_id": ["0", "0", "1"], "annotation": ["authentic"] * 3})
    with pytest.raises(SubmissionError, match="duplicated"):
        score_frame(sol, dup)


@pytest.mark.parametrize("bad", ["[1, 2, 3]", "[5, 1, 1, 1]", "[1, 5, 3, 1]", "[1, 2];", "nope"])
def test_malformed_prediction_is_an_error_not_a_zero(bad):
    with pytest.raises(SubmissionError, match="submission, case 1"):
        score_frame(frame(["authentic", "[1, 10]"], "[10, 10]"), frame(["authentic", bad]))


def test_solution_shape_must_be_h_w():
    with pytest.raises(SubmissionError, match="shape"):
        score_row("[1, 2]", "[1, 2]", "720x960")


def test_shape_is_height_then_width_in_column_major_order():
    m = np.zeros((3, 5), bool)
    m[:, 1] = True            # second column: pixels 4..6 in column-major order
    text = rle_encode(m)
    assert text == "[4, 3]"
    assert score_row(text, text, "[3, 5]") == 1.0


def test_score_image_is_the_rows_score_and_the_union_pixel_f1():
    a, b = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    a[2:5, 2:5], b[3:6, 3:6] = 1, 1                  # 4 of 9 pixels shared: F1 4/9
    assert score_image([a], [b]) == pytest.approx((4 / 9, 4 / 9))
    assert score_image([], [b]) == (0.0, 0.0)         # a missed forged image
    score, f1 = score_image([a], None)                # a false positive on an authentic image
    assert score == 0.0 and np.isnan(f1)
    score, f1 = score_image([], None)
    assert score == 1.0 and np.isnan(f1)
