"""Tuned post-processing travels with the models it was tuned for: `<models-dir>/postprocess.json`.

validate_test.py writes it when it measures on the held-out split (`--sweep`: the best
thresholds; `--compare-fusion`: the fusion rule the split prefers), keyed by what was measured:

  networks  the segmentation checkpoints, classifier and specialist (their SHA-256), their
            weights and test-time augmentation (absent when only the matcher was measured);
  matcher   the matcher's version, config and code (the cache key) and its verifier's SHA-256
            (absent when the networks alone were measured);
  split     the held-out images measured (their case_ids).

Every reader checks the key against the models at hand (`--fusion auto`, the default of
script_5_predict.py, make_kaggle_package.py and full_pipeline.py): a mismatch is one line that
names the part that changed and the command that re-tunes, never a silent use. Nothing is chosen
by a file's modification time. Without the file, `auto` is the matcher alone with its verifier's
threshold, the one detector that is safe without tuning.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import ProjectError, first_line
from ..fileio import atomic_write_text
from ..integrity import read_json, sha256
from ..options import FUSIONS, PostConfig
from ..paths import git_commit

TUNED_FILE = "postprocess.json"
TUNED_FORMAT = "copy-move-postprocess/1"
RETUNE = "python bin/validate_test.py --compare-fusion --sweep"
PARTS = {"networks": "the networks (checkpoints, weights or test-time augmentation)",
         "matcher": "the matcher (version, code, config or verifier)",
         "split": "the held-out images"}


@dataclass(frozen=True)
class TunedKey:
    """What a tuning was measured with (see the module docstring); None: not part of it."""

    networks: str | None = None
    matcher: str | None = None
    split: str | None = None

    def changed(self, now: TunedKey) -> list[str]:
        """The parts that `now` (the models at hand; None: not known here) differs in."""
        return [f.name for f in fields(self)
                if getattr(self, f.name) is not None and getattr(now, f.name) is not None
                and getattr(self, f.name) != getattr(now, f.name)]


@dataclass(frozen=True)
class Tuned:
    """A tuned post-processing as read from TUNED_FILE."""

    path: Path
    key: TunedKey
    post: PostConfig
    measured: dict            # how, score, images, forged, source, when, commit

    def describe(self) -> str:
        m = self.measured
        score = m.get("score")
        scored = f"score {score:.4f} on " if isinstance(score, (int, float)) else ""
        return (f"{self.path}: fusion {self.post.fusion} ({self.post.summary()}), {scored}{m.get('images', '?')} "
                f"held-out images, by {m.get('how', '?')} on {m.get('when', '?')}")


def _digest(spec) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def networks_key(segmenters: list[tuple[Path, float]], classifier: Path | None, specialist: Path | None,
                 tta: bool, aggregate: str) -> str:
    """The networks' part of the key: the checkpoints' contents and weights, and the TTA."""
    return _digest({"segmenters": [(sha256(p)[:16], float(w)) for p, w in segmenters],
                    "classifier": classifier and sha256(classifier)[:16],
                    "specialist": specialist and sha256(specialist)[:16],
                    "tta": bool(tta), "aggregate": aggregate if tta else None})


def matcher_key(matcher: str, config_key: str, verifier: Path | None) -> str:
    """The matcher's part of the key: its version name, its cache key (config and code) and its
    verifier's contents."""
    return _digest({"matcher": matcher, "config": config_key, "verifier": verifier and sha256(verifier)[:16]})


def split_key(case_ids) -> str:
    """The split's part of the key: the held-out case_ids, in any order."""
    return _digest(sorted(str(c) for c in case_ids))


def write_tuned(models_dir: Path, key: TunedKey, post: PostConfig, measured: dict) -> Path:
    """Write TUNED_FILE into `models_dir` (atomically): `post` validated under `key`."""
    path = Path(models_dir) / TUNED_FILE
    record = {"format": TUNED_FORMAT, "key": {f.name: getattr(key, f.name) for f in fields(key)},
              "post": post.as_dict(),
              "measured": {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_commit(), **measured}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, default=str))
    return path


def read_tuned(models_dir: Path) -> Tuned | None:
    """TUNED_FILE of `models_dir`, or None where there is none; a malformed one is an error."""
    path = Path(models_dir) / TUNED_FILE
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        if record.get("format") != TUNED_FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {TUNED_FORMAT!r}")
        key = TunedKey(**{f.name: record["key"].get(f.name) for f in fields(TunedKey)})
        post = PostConfig(**record["post"])
        measured = dict(record.get("measured") or {})
        score = measured.get("score")
        if score is not None and not (type(score) in (int, float) and math.isfinite(score)):
            raise ValueError(f"measured score {score!r} is not a finite number")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProjectError(f"{path}: not a tuned post-processing of validate_test.py ({first_line(exc)}); "
                           f"re-tune: {RETUNE}") from None
    if post.fusion not in FUSIONS:
        raise ProjectError(f"{path}: unknown fusion {post.fusion!r}")
    return Tuned(path, key, post, measured)


def check_tuned(tuned: Tuned, now: TunedKey) -> None:
    """Raise ProjectError naming the first part of `tuned`'s key that the models at hand (`now`)
    differ in, and how to re-tune or choose explicitly."""
    changed = tuned.key.changed(now)
    if changed:
        raise ProjectError(f"{tuned.path}: tuned for other {PARTS[changed[0]].replace('the ', '', 1)} than these "
                           f"({', '.join(changed)} changed since {tuned.measured.get('how', 'the tuning')} on "
                           f"{tuned.measured.get('when', '?')}); re-tune: {RETUNE}, or choose: --fusion "
                           f"{'|'.join(FUSIONS)}")
