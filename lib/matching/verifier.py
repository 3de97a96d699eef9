"""The verifier: a gradient-boosted tree model that turns a candidate's features into the
probability that it is a real copy. Stored as JSON (the trees as numbers, evaluated by
lib.matching.treemodel), so loading a verifier cannot run code and needs no scikit-learn.

One is committed (DEFAULT_VERIFIER, fitted on the development benchmark's training split by
bin/train_match_verifier.py); a verifier in the models folder (VERIFIER_NAME, fitted on the
real data by the pipeline) or given by --match-verifier replaces it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ProjectError
from ..fileio import atomic_write_bytes
from ..integrity import read_json
from ..options import DEFAULT_VERIFIER, VERIFIER_NAME
from .features import FEATURES, schema_hash
from .treemodel import parse_model, predict_parsed

VERIFIER_FORMAT = "recodai-match-verifier/1"
MAX_BYTES = 20 * 2 ** 20


class VerifierError(ProjectError):
    """A verifier file that cannot be used (one line naming the file and the problem)."""


@dataclass
class Verifier:
    model: dict                          # lib.matching.treemodel's JSON form of the trees
    threshold: float = 0.5               # a figure's best candidate at least this: forged (chosen on validation)
    training: dict = field(default_factory=dict)   # what it was fitted on, how, and its validation figures
    path: Path | None = None

    def __post_init__(self):
        self._parsed = parse_model(self.model, str(self.path or "verifier"))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n,) probability that each candidate (rows of FEATURES) is a real copy."""
        features = np.asarray(features, np.float64).reshape(-1, len(FEATURES))
        return predict_parsed(self._parsed, features)

    def to_json(self) -> dict:
        return {"format": VERIFIER_FORMAT, "features": list(FEATURES), "schema": schema_hash(),
                "threshold": self.threshold, "training": self.training, "model": self.model}

    def save(self, path: Path) -> None:
        atomic_write_bytes(Path(path), json.dumps(self.to_json(), separators=(",", ":")).encode())

    @classmethod
    def load(cls, path: Path) -> Verifier:
        """The verifier in `path`; VerifierError (one line) for a file that is not one, was made
        for other features, or whose trees are malformed. Reading is json.loads: no code runs."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise VerifierError(f"{path}: {path.stat().st_size} bytes, more than a verifier's {MAX_BYTES}")
            data = read_json(path, MAX_BYTES)
        except (OSError, ValueError) as exc:       # not UTF-8, not JSON, nested too deeply
            raise VerifierError(f"{path}: not a readable JSON verifier ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != VERIFIER_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise VerifierError(f"{path}: format {found!r} is not {VERIFIER_FORMAT!r}: not a match verifier")
        if data.get("features") != list(FEATURES) or data.get("schema") != schema_hash():
            raise VerifierError(f"{path}: fitted on features (schema {data.get('schema')!r}) other than this "
                                f"matcher's (schema {schema_hash()!r}); refit it: python bin/train_match_verifier.py")
        threshold = data.get("threshold")
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise VerifierError(f"{path}: threshold {threshold!r} is not a probability")
        training = data.get("training") if isinstance(data.get("training"), dict) else {}
        try:
            verifier = cls(data.get("model"), float(threshold), training, path)
        except ValueError as exc:
            raise VerifierError(str(exc)) from None
        if verifier._parsed[0] != len(FEATURES):
            raise VerifierError(f"{path}: trees over {verifier._parsed[0]} features, not {len(FEATURES)}")
        return verifier


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Verifier:
    return Verifier.load(Path(path))


def load_verifier(path: Path) -> Verifier:
    """Verifier.load, remembered per file and modification time (the pipeline asks per image)."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise VerifierError(f"{path}: no such verifier file") from None
    return _load_cached(str(path.resolve()), mtime)


def default_verifier() -> Verifier:
    """The committed verifier (fitted on the development benchmark)."""
    if not DEFAULT_VERIFIER.is_file():
        raise VerifierError(f"{DEFAULT_VERIFIER}: the committed verifier is missing; rebuild it with "
                            "python bin/train_match_verifier.py --default")
    return load_verifier(DEFAULT_VERIFIER)


def resolve_verifier(models_dir: Path | None, explicit: Path | None = None) -> Path:
    """Which verifier file the matcher uses: `explicit`, else models_dir/VERIFIER_NAME when
    the pipeline fitted one, else the committed default."""
    if explicit is not None:
        return Path(explicit)
    if models_dir is not None and (Path(models_dir) / VERIFIER_NAME).is_file():
        return Path(models_dir) / VERIFIER_NAME
    return DEFAULT_VERIFIER
