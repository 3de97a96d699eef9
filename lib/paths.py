"""Where things live: the repository root, the data folders and the --data-dir/--models-dir/--logs-dir flags.

Every path is resolved as: command-line flag, then environment variable, then a default
(the data under the repository root, models and logs under the data folder). Nothing is
hard-coded to a machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ProjectError

ROOT = Path(__file__).resolve().parents[1]

ENV_DATA_DIR = "FORGERY_DATA_DIR"
ENV_MODELS_DIR = "FORGERY_MODELS_DIR"
ENV_LOGS_DIR = "FORGERY_LOGS_DIR"

# a training run's files in the models dir (lib.models.checkpoints writes and reads them)
BEST_SUFFIX = "_best.safetensors"        # the model checkpoint: what the predictor loads and people share
LAST_SUFFIX = "_last.pth"                # the resume state (optimizer etc.), read only by the run itself
HARD_NEGATIVES_FILE = "hard_negative_ids.txt"   # in the data dir: authentic images mined as hard negatives
LEGACY_BEST_SUFFIX = "_best.pth"         # pickled best checkpoints of earlier versions: convert them


def best_checkpoint(models_dir: Path, run_name: str) -> Path:
    """`<models_dir>/<run_name>_best.safetensors`, the file the predictor loads."""
    return Path(models_dir) / f"{run_name}{BEST_SUFFIX}"


def last_checkpoint(models_dir: Path, run_name: str) -> Path:
    """`<models_dir>/<run_name>_last.pth`, the run's resume state."""
    return Path(models_dir) / f"{run_name}{LAST_SUFFIX}"


@dataclass(frozen=True)
class Paths:
    """Resolved folders of one run. `data_dir` holds the Kaggle layout (train_images/, train_masks/, test_images/)."""

    data_dir: Path
    models_dir: Path
    logs_dir: Path

    @property
    def train_images(self) -> Path:
        return self.data_dir / "train_images"

    @property
    def train_masks(self) -> Path:
        return self.data_dir / "train_masks"

    @property
    def test_images(self) -> Path:
        return self.data_dir / "test_images"

    @property
    def supplemental_images(self) -> Path:
        return self.data_dir / "supplemental_images"

    @property
    def supplemental_masks(self) -> Path:
        return self.data_dir / "supplemental_masks"

    @property
    def manifest(self) -> Path:
        """The cached table of every training image (see lib.data.manifest.load_manifest)."""
        return self.data_dir / "train_manifest.csv"


def add_path_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --data-dir, --models-dir and --logs-dir to a script's parser."""
    group = parser.add_argument_group("paths")
    group.add_argument("--data-dir", type=Path, default=None,
                       help=f"folder holding train_images/, train_masks/, test_images/ "
                            f"(default: ${ENV_DATA_DIR} or the repository root)")
    group.add_argument("--models-dir", type=Path, default=None,
                       help=f"checkpoints folder (default: ${ENV_MODELS_DIR} or <data-dir>/models)")
    group.add_argument("--logs-dir", type=Path, default=None,
                       help=f"log folder (default: ${ENV_LOGS_DIR} or <data-dir>/logs)")
    return parser


def _pick(flag: Path | None, env: str, default: Path) -> Path:
    if flag is not None:
        return Path(flag).expanduser().resolve()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    return default


def relative(path: Path) -> str:
    """`path` relative to the repository root when inside it (README's commands run from there)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def checkpoints_elsewhere(models_dir: Path, pattern: str = f"*{BEST_SUFFIX}") -> str:
    """Where else checkpoints matching `pattern` are, for an error about `models_dir` having none:
    '; 5 in demo/models: pass --models-dir demo/models (or --data-dir demo)', or '' if nowhere.
    Looks in <root>/models and each <root>/<folder>/models (demo/, a benchmark, ...)."""
    here = Path(models_dir).resolve()
    places = [ROOT / "models", *sorted(p / "models" for p in ROOT.iterdir() if p.is_dir() and p.name[0] != ".")]
    found = [(place, len(list(place.glob(pattern)))) for place in places if place.is_dir() and place.resolve() != here]
    found = [(place, count) for place, count in found if count]
    if not found:
        return ""
    place, count = max(found, key=lambda item: item[1])
    folder = relative(place)
    data = f" (or --data-dir {relative(place.parent)})" if place.parent != ROOT else ""
    return f"; {count} in {folder}: pass --models-dir {folder}{data}"


def resolve_paths(args: argparse.Namespace | None = None) -> Paths:
    """Resolve the run's folders from parsed flags (missing attributes count as unset). A data
    folder is a workspace: its checkpoints and logs default to <data-dir>/models and
    <data-dir>/logs (<root>/models and <root>/logs for the Kaggle data in the repository), so
    `--data-dir demo` alone finds what `full_pipeline.py --demo` trained."""
    data_dir = _pick(getattr(args, "data_dir", None), ENV_DATA_DIR, ROOT)
    return Paths(
        data_dir=data_dir,
        models_dir=_pick(getattr(args, "models_dir", None), ENV_MODELS_DIR, data_dir / "models"),
        logs_dir=_pick(getattr(args, "logs_dir", None), ENV_LOGS_DIR, data_dir / "logs"),
    )


def require_benchmark(paths: Paths, needed: Sequence[str]) -> None:
    """ProjectError naming the first of `needed` (files or folders) that paths.data_dir lacks: the
    scripts that read a benchmark's layout (bin/make_benchmark.py) check it before any work."""
    for name in needed:
        if not (paths.data_dir / name).exists():
            raise ProjectError(f"{paths.data_dir / name}: missing; --data-dir must be a benchmark made by "
                               "bin/make_benchmark.py")


def git_commit() -> str | None:
    """The repository's short commit hash, or None outside a git checkout (a Kaggle package)."""
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None
