"""The ground truth of held-out images, from either place it is written: the training layout's
masks (manifest rows) or a solution CSV in the competition's format (a benchmark's test split).
Masks are loaded on demand, one image at a time: they can be large."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..competition.metric import parse_shape
from ..competition.rle import rle_decode_instances
from ..competition.submission import read_solution
from ..errors import ProjectError
from ..imageio import load_mask
from .manifest import FORGED


@dataclass(frozen=True)
class Truth:
    """The ground truth of one image, loaded on demand (masks can be large)."""

    case_id: str
    image_path: Path
    forged: bool
    mask_path: Path | None = None      # training layout
    annotation: str = ""               # solution CSV
    hw: tuple[int, int] = (0, 0)

    def instances(self) -> list[np.ndarray] | None:
        """The true instance masks (None: authentic)."""
        if not self.forged:
            return None
        if self.mask_path is not None:
            return list(load_mask(self.mask_path, expected_hw=self.hw).instances)
        return rle_decode_instances(self.annotation, self.hw)


def truths_from_manifest(data_dir: Path, rows: pd.DataFrame) -> list[Truth]:
    """Ground truth of manifest rows (lib.data.manifest)."""
    return [Truth(str(r.case_id), data_dir / r.image_path, r.label == FORGED,
                  data_dir / r.mask_path if r.label == FORGED else None, hw=(int(r.height), int(r.width)))
            for r in rows.itertuples()]


def truths_from_solution(solution: Path, image_paths: Iterable[Path]) -> list[Truth]:
    """Ground truth of the images in a folder from a solution CSV (case_id, annotation, shape)."""
    frame = read_solution(solution).set_index("case_id")
    truths = []
    for path in image_paths:
        if path.stem not in frame.index:
            raise ProjectError(f"{solution}: no row for image {path.name}")
        row = frame.loc[path.stem]
        forged = row["annotation"] != "authentic"
        truths.append(Truth(path.stem, path, forged, annotation=row["annotation"] if forged else "",
                            hw=parse_shape(row["shape"], path.stem) if forged else (0, 0)))
    return truths
