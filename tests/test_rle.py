"""RLE: the competition's convention exactly, round trips, edge cases and malformed input."""
import json

import numpy as np
import pytest

from lib.competition.rle import check_rle, rle_decode, rle_decode_instances, rle_encode, rle_encode_instances
from lib.errors import RLEError


def reference_encode(mask: np.ndarray) -> str:
    """The competition's own encoder, transcribed loop for loop (column-major, 1-based)."""
    dots = np.where(mask.T.flatten() == 1)[0]
    runs, prev = [], -2
    for b in dots:
        if b > prev + 1:
            runs.extend((int(b) + 1, 0))
        runs[-1] += 1
        prev = b
    return json.dumps(runs)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (3, 5), (17, 31), (64, 74), (101, 3)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_round_trip_random_masks_match_reference(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    mask = (rng.random(shape) < density).astype(np.uint8)
    text = rle_encode(mask)
    assert text == reference_encode(mask)
    assert np.array_equal(rle_decode(text, shape), mask.astype(bool))


def test_column_major_one_based_convention():
    mask = np.zeros((3, 4), dtype=np.uint8)
    mask[0, 0] = 1            # first pixel: start 1
    mask[1, 0] = 1            # same column, next row: same run
    mask[0, 1] = 1            # next column starts at 1 + 3 = 4
    assert rle_encode(mask) == "[1, 2, 4, 1]"


def test_edge_cases_empty_full_single_and_last_pixel():
    h, w = 5, 6
    assert rle_encode(np.zeros((h, w))) == "[]"
    assert not rle_decode("[]", (h, w)).any()
    assert rle_encode(np.ones((h, w))) == f"[1, {h * w}]"
    assert rle_decode(f"[1, {h * w}]", (h, w)).all()
    one = np.zeros((h, w), bool)
    one[2, 3] = True
    assert rle_encode(one) == f"[{3 * h + 2 + 1}, 1]"
    last = np.zeros((h, w), bool)
    last[-1, -1] = True
    assert rle_encode(last) == f"[{h * w}, 1]"
    assert np.array_equal(rle_decode(f"[{h * w}, 1]", (h, w)), last)


def test_accepts_bool_and_any_nonzero_values():
    mask = np.array([[0, 3], [True, 0]])
    assert rle_encode(mask) == rle_encode(mask.astype(bool)) == "[2, 2]"


def test_instances_are_joined_by_semicolon():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, 0] = b[3, 3] = True
    text = rle_encode_instances([a, b])
    assert text == "[1, 1];[16, 1]"
    back = rle_decode_instances(text, (4, 4))
    assert len(back) == 2 and np.array_equal(back[0], a) and np.array_equal(back[1], b)


def test_large_mask_round_trip_is_fast_enough_and_exact():
    rng = np.random.default_rng(0)
    mask = np.zeros((3000, 3000), bool)
    for _ in range(50):
        y, x = rng.integers(0, 2900, 2)
        mask[y:y + rng.integers(5, 100), x:x + rng.integers(5, 100)] = True
    assert np.array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


@pytest.mark.parametrize("text, message", [
    ("[1, 2, 3]", "odd number"),
    ("[5, 2, 1, 1]", "ascending"),
    ("[1, 5, 3, 2]", "overlap"),
    ("[0, 2]", ">= 1"),
    ("[1, 0]", "lengths"),
    ("[1, -2]", "lengths"),
    ("[1.5, 2]", "integers"),
    ("1 2", "JSON"),
    ("[1, 2", "JSON"),
    ('{"a": 1}', "JSON"),
    ("", "JSON"),
    ("[true, 1]", "integers"),
    ("[1, 2, 9223372036854775000, 10000]", "past 4611686018427387904"),   # its end wrapped around in int64
    ("[99999999999999999999999, 1]", "past 4611686018427387904"),          # past int64 itself
    ("[" * 100_000 + "]" * 100_000, "JSON"),                                # nested past Python's recursion limit
])
def test_malformed_rle_raises_clear_error(text, message):
    with pytest.raises(RLEError, match=message):
        rle_decode(text, (10, 10))


def test_adjacent_runs_are_not_overlapping():
    # end of run 1 (exclusive) == start of run 2: allowed by the metric
    assert rle_decode("[1, 2, 3, 2]", (2, 2)).all()


def test_run_past_the_image_is_rejected():
    check_rle("[1, 100]", (10, 10))
    with pytest.raises(RLEError, match="past the 10x10 image"):
        check_rle("[1, 101]", (10, 10))
    with pytest.raises(RLEError, match="past"):
        rle_decode("[100, 2]", (10, 10))


def reference_decode(text: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The slow reference: Python integers (no overflow), every rule spelled out; None where the
    annotation is malformed. Bounds: start >= 1, length >= 1, starts increasing, runs not
    overlapping, the last pixel within H*W."""
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(values, list) or len(values) % 2 or any(type(v) is not int for v in values):
        return None
    flat = [False] * (shape[0] * shape[1])
    previous_end = 0                                     # 1-based last pixel of the run before
    for start, length in zip(values[0::2], values[1::2]):
        if start < 1 or length < 1 or start <= previous_end or start + length - 1 > len(flat):
            return None
        for pixel in range(start - 1, start - 1 + length):
            flat[pixel] = True
        previous_end = start + length - 1
    return np.array(flat, bool).reshape(shape, order="F")


def _random_annotation(rng: np.random.Generator, pixels: int) -> str:
    """Runs that are mostly well formed, with every way of being wrong mixed in: huge values (past
    int64 and near its wrap-around), negative and zero ones, overlaps, disorder, floats, odd counts."""
    values: list = []
    position = 1
    for _ in range(rng.integers(0, 6)):
        start = position + int(rng.integers(0, 4))
        length = int(rng.integers(1, 5))
        values += [start, length]
        position = start + length
    kind = rng.integers(0, 12)
    if values and kind == 0:
        values[rng.integers(len(values))] = int(rng.choice([2**63 - 1, 2**63, 2**64 + 3, 9223372036854775000,
                                                            10**30, -(2**63), -(10**30)]))
    elif values and kind == 1:
        values[rng.integers(len(values))] = -int(rng.integers(0, 3))
    elif len(values) >= 4 and kind == 2:
        values[2] = values[0]                                           # two runs from one start
    elif len(values) >= 4 and kind == 3:
        values[0], values[2] = values[2], values[0]                     # disorder
    elif values and kind == 4:
        values[-1] = pixels                                             # past the end
    elif values and kind == 5:
        values.pop()                                                    # odd count
    elif values and kind == 6:
        values[0] = float(values[0]) + 0.5
    elif values and kind == 7:
        values = [values[0], 9223372036854775000 - values[0] + 2] + values[2:]   # wraps in int64
    return json.dumps(values)


def test_check_rle_and_the_scorer_agree_with_a_slow_reference_on_random_and_hostile_runs():
    from lib.competition.metric import score_row
    from lib.errors import SubmissionError
    rng = np.random.default_rng(2026)
    shapes = [(1, 1), (3, 4), (5, 5), (2, 9)]
    malformed = 0
    for trial in range(3000):
        shape = shapes[trial % len(shapes)]
        text = _random_annotation(rng, shape[0] * shape[1])
        expected = reference_decode(text, shape)
        if expected is None:
            malformed += 1
            with pytest.raises(RLEError):
                check_rle(text, shape)
            with pytest.raises(SubmissionError):             # never scored, let alone as correct
                score_row(text, text, json.dumps(list(shape)))
        else:
            assert np.array_equal(rle_decode(text, shape), expected), text
            if expected.any():
                assert score_row(text, text, json.dumps(list(shape))) == 1.0
    assert 300 < malformed < 2700                    # both kinds well represented
