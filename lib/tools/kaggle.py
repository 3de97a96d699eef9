"""The Kaggle upload (a code competition: the submission comes from a notebook run offline).

`build_package` writes one folder, ready for `kaggle datasets create -p DIR`: lib/, the offline
entry point bin/kaggle_predict.py, the chosen checkpoints under models/ (with the names the
predictor looks for), wheels/ of the packages Kaggle's image may lack, package.json (versions,
predictor settings and thresholds, checkpoint hashes, validation score) and
dataset-metadata.json; and notebook/ with the notebook (.ipynb) and its kernel-metadata.json,
ready for `kaggle kernels push -p DIR/notebook`. The folder is built under a temporary name and
renamed when complete, so a failed packaging never leaves a half package.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from ..errors import ProjectError
from ..fileio import atomic_write_text
from ..flags import record
from ..inference.infer import predictor_checkpoints
from ..inference.tuned import TUNED_FILE, Tuned
from ..integrity import PACKAGE_FILE, sha256
from ..matching import VERIFIER_NAME, resolve_verifier
from ..options import KAGGLE_PYTHON, PACKAGED, PostConfig, PredictorOptions
from ..paths import ROOT, git_commit

log = logging.getLogger(__name__)

COMPETITION = "recodai-luc-scientific-image-forgery-detection"
ENTRY = "bin/kaggle_predict.py"
NOTEBOOK = "kaggle_notebook.ipynb"
# what Kaggle's notebook image may lack, or hold in another version (albumentations 2.x API)
WHEEL_DISTS = ("segmentation-models-pytorch", "albumentations", "albucore", "simsimd", "stringzilla")
VERSIONS = ("torch", "timm", "segmentation-models-pytorch", "albumentations", "numpy", "opencv-python-headless",
            "scipy", "pandas")


@dataclass(frozen=True)
class Checkpoint:
    role: str                 # segmenter | classifier | specialist (package.json also records the verifier)
    source: Path
    weight: float | None = None

    @property
    def name(self) -> str:
        return self.source.name


def choose_checkpoints(models_dir: Path, ensemble: list[str] | None, stage: str, use_classifier: bool,
                       use_specialist: bool) -> list[Checkpoint]:
    """The checkpoints the predictor would load from `models_dir` with these flags."""
    specs, classifier, specialist = predictor_checkpoints(models_dir, ensemble, stage, use_classifier,
                                                          use_specialist)
    chosen = [Checkpoint("segmenter", Path(p), w) for p, w in specs]
    names = [c.name for c in chosen]
    if len(set(names)) != len(names):
        raise ProjectError(f"two ensemble checkpoints share a file name ({', '.join(names)}); rename one")
    return chosen + [Checkpoint(role, path) for role, path in (("classifier", classifier), ("specialist", specialist))
                     if path is not None]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in VERSIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _wheel_dist(path: Path) -> str:
    return path.name.split("-")[0].replace("_", "-").lower()


def fetch_wheels(dest: Path, source: Path | None, python_version: str) -> dict:
    """The wheels of WHEEL_DISTS at the versions installed here, copied from `source` or, without
    it, downloaded with pip (the package registry is needed now, never in Kaggle). Returns
    {dist: [version, file name]}."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for dist in WHEEL_DISTS:
        try:
            wanted[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise ProjectError(f"{dist} is not installed here; pip install -r requirements.txt first") from None
    if source is not None:
        if not Path(source).is_dir():
            raise ProjectError(f"--wheels-from {source}: not a folder")
        for wheel in Path(source).glob("*.whl"):
            if _wheel_dist(wheel) in wanted and f"-{wanted[_wheel_dist(wheel)]}-" in wheel.name:
                shutil.copy2(wheel, dest / wheel.name)
    else:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", python_version, "--implementation", "cp",
                   "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                   "-d", str(dest), *(f"{d}=={v}" for d, v in wanted.items())]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()
            raise ProjectError(f"pip download of the wheels failed ({tail[-1] if tail else 'no output'}); "
                               f"without access to the package registry pass --wheels-from DIR or --no-wheels")
    found = {_wheel_dist(w): [wanted[_wheel_dist(w)], w.name] for w in dest.glob("*.whl")}
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ProjectError(f"no wheel for {', '.join(missing)} (Python {python_version}, manylinux x86_64)")
    return found


def notebook(dataset_hint: str) -> dict:
    """The Kaggle notebook: find the attached package and run its entry point, output streamed."""
    code = f'''# Offline inference for {COMPETITION}.
# Attach the package dataset ({dataset_hint}) to this notebook; internet can stay off.
import glob
import subprocess
import sys

entries = sorted(glob.glob("/kaggle/input/**/{ENTRY}", recursive=True))
if not entries:
    raise FileNotFoundError("attach the package dataset made by bin/make_kaggle_package.py to this notebook")
process = subprocess.Popen([sys.executable, entries[0]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for line in process.stdout:
    print(line, end="")
if process.wait() != 0:
    raise RuntimeError(f"{{entries[0]}} exited with code {{process.returncode}}")
'''
    intro = (f"# Copy-move forgery detection: offline submission\n\nRuns `{ENTRY}` of the attached package "
             f"(segmentation ensemble, classifier gate, small-forgery specialist and the copy-move matcher, "
             f"with the thresholds recorded in its `{PACKAGE_FILE}`) on the competition's test images and "
             f"writes `/kaggle/working/submission.csv`.")
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": intro.splitlines(keepends=True)},
                      {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                       "source": code.splitlines(keepends=True)}],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


@dataclass
class PackageOptions:
    predictor: PredictorOptions = field(default_factory=PredictorOptions)   # its PACKAGED settings are recorded
    wheels: str = "download"          # download | none | a folder to copy from
    python_version: str = KAGGLE_PYTHON
    kaggle_user: str = "YOUR_KAGGLE_USERNAME"
    dataset_slug: str = "copy-move-forgery-package"
    overwrite: bool = False


def validation_record(tuned: Tuned | None, auto: bool) -> dict:
    """What package.json says of where the post-processing comes from: the tuned file (validated
    for these models: its score and how it was measured), or none."""
    if tuned is not None:
        return {"file": f"models/{TUNED_FILE}", "score": tuned.measured.get("score"),
                **{k: tuned.measured.get(k) for k in ("how", "when", "images", "forged")},
                "scored_on": tuned.measured.get("source"), "key": asdict(tuned.key)}
    note = (f"no {TUNED_FILE} for these models (validate_test.py --compare-fusion / --sweep writes it): the "
            f"matcher alone at its verifier's threshold" if auto else "the post-processing flags, not validated")
    return {"score": None, "note": note}


def build_package(output: Path, models_dir: Path, config: PostConfig, validation: dict | None,
                  options: PackageOptions, tuned: Path | None = None) -> dict:
    """Write the package folder (see the module docstring); returns its package.json content.
    `tuned`: the tuned post-processing file that `config` comes from, packaged beside the models
    (and recorded with its hash); with fusion `matcher` no network is packaged."""
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not options.overwrite:
        raise ProjectError(f"{output}: exists and is not empty; choose another --output-dir or pass --overwrite")
    predictor = options.predictor
    checkpoints = [] if config.fusion == "matcher" else choose_checkpoints(
        models_dir, predictor.ensemble, predictor.stage, predictor.classifier, predictor.specialist)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(ROOT / "lib", partial / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (partial / "bin").mkdir()
        shutil.copy2(ROOT / ENTRY, partial / ENTRY)
        (partial / "models").mkdir()
        records = []
        for checkpoint in checkpoints:
            shutil.copy2(checkpoint.source, partial / "models" / checkpoint.name)
            records.append({"role": checkpoint.role, "file": f"models/{checkpoint.name}", "weight": checkpoint.weight,
                            "bytes": checkpoint.source.stat().st_size, "sha256": sha256(checkpoint.source)})
        # the matcher's verifier: the one this predictor would use (fitted by the pipeline, or the default)
        verifier = resolve_verifier(models_dir)
        shutil.copy2(verifier, partial / "models" / VERIFIER_NAME)
        records.append({"role": "verifier", "file": f"models/{VERIFIER_NAME}", "weight": 0,
                        "bytes": verifier.stat().st_size, "sha256": sha256(verifier)})
        if tuned is not None:
            shutil.copy2(tuned, partial / "models" / TUNED_FILE)
            records.append({"role": "postprocess", "file": f"models/{TUNED_FILE}", "weight": 0,
                            "bytes": tuned.stat().st_size, "sha256": sha256(tuned)})
        wheels = {}
        if options.wheels != "none":
            source = None if options.wheels == "download" else Path(options.wheels)
            wheels = fetch_wheels(partial / "wheels", source, options.python_version)
        segmenters = [f"models/{c.name}:{c.weight:g}" for c in checkpoints if c.role == "segmenter"]
        # the entry point's flag defaults (argparse destinations = the option fields)
        arguments = {**{k: v for k, v in record(predictor).items() if k in PACKAGED}, "ensemble": segmenters,
                     **record(config)}
        meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "competition": COMPETITION, "commit": git_commit(),
                "versions": versions(), "python_for_wheels": options.python_version if wheels else None,
                "wheels": wheels, "checkpoints": records, "thresholds": config.as_dict(), "arguments": arguments,
                "validation": validation or validation_record(None, False)}
        atomic_write_text(partial / PACKAGE_FILE, json.dumps(meta, indent=2))
        dataset_id = f"{options.kaggle_user}/{options.dataset_slug}"
        atomic_write_text(partial / "dataset-metadata.json", json.dumps(
            {"title": "Copy-move forgery package", "id": dataset_id, "licenses": [{"name": "CC0-1.0"}]}, indent=2))
        (partial / "notebook").mkdir()
        atomic_write_text(partial / "notebook" / NOTEBOOK, json.dumps(notebook(dataset_id), indent=1))
        atomic_write_text(partial / "notebook" / "kernel-metadata.json", json.dumps(
            {"id": f"{options.kaggle_user}/copy-move-forgery-inference", "title": "copy-move forgery inference",
             "code_file": NOTEBOOK, "language": "python", "kernel_type": "notebook", "is_private": True,
             "enable_gpu": True, "enable_internet": False, "dataset_sources": [dataset_id],
             "competition_sources": [COMPETITION], "kernel_sources": []}, indent=2))
        if output.exists():
            shutil.rmtree(output)
        partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return meta


def describe(output: Path) -> str:
    """The package's files by folder with their sizes, and the total."""
    sizes: dict[str, int] = {}
    for path in Path(output).rglob("*"):
        if path.is_file():
            top = path.relative_to(output).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    lines = [f"  {name:<22} {size / 2**20:9.2f} MiB" for name, size in sorted(sizes.items())]
    return "\n".join(lines + [f"  {'total':<22} {sum(sizes.values()) / 2**20:9.2f} MiB"])
