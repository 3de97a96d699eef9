"""submission.csv: build annotations from instance masks, write atomically, read, validate.

Format (docs/competition.md): header `case_id,annotation`, one row per test image,
`authentic` or the instances' RLEs joined by ';'. Every CSV reader of the project goes
through `read_csv_strict`, which keeps every field a string and has no field-size limit
(the RLE of a large image is far longer than the csv module's default 131,072 characters).
"""
from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, RLEError, SubmissionError
from ..fileio import atomic_path
from ..imageio import list_images, read_image_size
from .metric import AUTHENTIC, parse_shape
from .rle import check_rle, rle_encode

SUBMISSION_COLUMNS = ["case_id", "annotation"]
SOLUTION_COLUMNS = ["case_id", "annotation", "shape"]


def annotation_from_instances(instances: Iterable[np.ndarray]) -> str:
    """The annotation of one image: its non-empty instances' RLEs joined by ';', else `authentic`."""
    parts = [rle_encode(m) for m in instances if np.any(m)]
    return ";".join(parts) if parts else AUTHENTIC


def sort_case_ids(ids: Iterable[str]) -> list[str]:
    """Sort case ids numerically when they are all integers (as on Kaggle), else as text."""
    ids = list(ids)
    if all(i.isdigit() for i in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write a CSV atomically: a crash never leaves a half-written file at `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows(rows)


def write_submission(annotations: Mapping[str, str], path: Path,
                     shapes: Mapping[str, tuple[int, int]] | None = None) -> None:
    """Validate then write submission.csv, rows sorted by case_id.

    With `shapes` (case_id -> (H, W) of every test image) the rows must be exactly those
    images and every RLE must fit its image. Nothing is written when validation fails.
    """
    frame = pd.DataFrame({"case_id": list(annotations), "annotation": list(annotations.values())})
    problems = validate_frame(frame, shapes)
    if problems:
        raise SubmissionError(f"{path}: not written, {len(problems)} problem(s); first: {problems[0]}")
    order = sort_case_ids(annotations)
    write_csv(path, SUBMISSION_COLUMNS, ((cid, annotations[cid]) for cid in order))


def read_csv_strict(path: Path, columns: Sequence[str], allow_extra: bool = False) -> pd.DataFrame:
    """Read a project CSV with every field as a string; the header must be exactly `columns`
    (with `allow_extra`: start with them; later columns are kept)."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header: pandas would make its first field the index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c", index_col=False)
    except pd.errors.ParserWarning:
        raise SubmissionError(f"{path}: a row has more fields than the header {','.join(columns)} "
                              f"(an annotation with commas must be quoted)") from None
    except pd.errors.EmptyDataError:
        raise SubmissionError(f"{path}: empty file, expected the header {','.join(columns)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SubmissionError(f"{path}: not a readable CSV ({first})") from None
    header = list(frame.columns)
    if header[: len(columns)] != list(columns) or (header != list(columns) and not allow_extra):
        raise SubmissionError(f"{path}: header is {','.join(map(str, frame.columns))!r}, "
                              f"expected {','.join(columns)!r}")
    return frame


def read_submission(path: Path, allow_extra: bool = False) -> pd.DataFrame:
    """Read a submission CSV (case_id, annotation). With `allow_extra`, later columns (such as a
    solution's `shape`) are tolerated, so that a solution file can be scored as a submission."""
    return read_csv_strict(path, SUBMISSION_COLUMNS, allow_extra)


def read_solution(path: Path) -> pd.DataFrame:
    """Read a solution CSV (case_id, annotation, shape) as written by make_demo_data or validate_test."""
    return read_csv_strict(path, SOLUTION_COLUMNS)


def solution_shapes(solution: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """(H, W) of each solution row whose shape is given (authentic rows may say `authentic`)."""
    return {cid: parse_shape(shape, cid) for cid, shape in zip(solution["case_id"], solution["shape"])
            if shape != AUTHENTIC}


def image_shapes(test_dir: Path) -> dict[str, tuple[int, int]]:
    """case_id -> (H, W) of every image of a test folder (PNG headers only: fast)."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise SubmissionError(f"{test_dir}: test image folder not found")
    shapes: dict[str, tuple[int, int]] = {}
    for path in list_images(test_dir):
        if path.stem in shapes:
            raise SubmissionError(f"{path}: two test images share the case_id {path.stem}")
        try:
            shapes[path.stem] = read_image_size(path)
        except DataError:
            shapes[path.stem] = None  # unreadable: its row must be 'authentic'
    return shapes


def validate_frame(frame: pd.DataFrame, shapes: Mapping[str, tuple[int, int] | None] | None = None,
                   ) -> list[str]:
    """Every problem of a submission table, one line each (empty list: valid).

    Checks ids (non-empty, unique, and with `shapes`: exactly the test images) and each
    annotation (`authentic` or ';'-joined RLEs, well-formed, inside its image when its
    shape is known).
    """
    problems: list[str] = []
    ids = frame["case_id"].astype(str)
    if (ids.str.strip() == "").any():
        problems.append("empty case_id")
    for cid in ids[ids.duplicated()].unique():
        problems.append(f"case {cid}: duplicated row")
    if shapes is not None:
        missing = sorted(set(shapes) - set(ids))
        extra = sorted(set(ids) - set(shapes))
        problems += [f"case {cid}: no row for this test image" for cid in missing]
        problems += [f"case {cid}: not a test image" for cid in extra]
    for cid, annotation in zip(ids, frame["annotation"].astype(str)):
        if annotation == AUTHENTIC:
            continue
        if annotation.strip() == "":
            problems.append(f"case {cid}: empty annotation (use 'authentic')")
            continue
        hw = shapes.get(cid) if shapes is not None else None
        for k, part in enumerate(annotation.split(";")):
            try:
                if len(check_rle(part, hw)) == 0:
                    raise RLEError("empty instance '[]' (drop it; it costs an excess-prediction penalty)")
            except RLEError as exc:
                problems.append(f"case {cid}, instance {k + 1}: {exc}")
    return problems


def validate_submission_file(path: Path, test_dir: Path | None = None,
                             solution: Path | None = None) -> list[str]:
    """Read and validate a submission file against a test folder and/or a solution file."""
    frame = read_submission(path)
    shapes = None
    if test_dir is not None:
        shapes = image_shapes(test_dir)
    elif solution is not None:
        sol = read_solution(solution)
        shapes = {cid: None for cid in sol["case_id"]}
        shapes.update(solution_shapes(sol))
    return validate_frame(frame, shapes)
