#!/usr/bin/env python
"""Predict with a Kaggle package (made by bin/make_kaggle_package.py), offline.

    python bin/kaggle_predict.py      # in Kaggle: the competition's test images -> /kaggle/working/submission.csv
    python PKG/bin/kaggle_predict.py --input-dir demo/test_images --output submission.csv   # anywhere

This file is copied into the package as bin/kaggle_predict.py, next to the package's lib/,
models/ and package.json, and the package's notebook runs it. First it checks every checkpoint's
size and sha256 against package.json (a corrupted or swapped weights file stops the run, no
submission). It needs no internet: packages that the Python environment lacks, or has in
another version than the package was made with (segmentation-models-pytorch, albumentations,
...), are installed from the package's wheels/ with `pip install --no-index`. The predictor, its
checkpoints, the thresholds and the fusion with the copy-move matcher are the ones recorded in
package.json; every flag of script_5_predict.py can still override them. A test image that cannot
be read gets an `authentic` row and a warning (Kaggle rejects a submission with a missing row).
"""
import argparse
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
PACKAGE_FILE = "package.json"
COMPETITION = "recodai-luc-scientific-image-forgery-detection"
KAGGLE = Path("/kaggle")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def read_package(package: Path) -> dict:
    try:
        return json.loads((package / PACKAGE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{package / PACKAGE_FILE}: not found; this script runs inside a package made by "
             f"python bin/make_kaggle_package.py (or pass --package DIR)")
    except (OSError, ValueError, RecursionError) as exc:
        fail(f"{package / PACKAGE_FILE}: unreadable ({type(exc).__name__}: {str(exc)[:200]})")


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_dependencies(package: Path, wheels: dict) -> None:
    """pip install, from the package's wheels only, each one whose distribution is missing or in
    another version; nothing is fetched from the internet."""
    needed = [package / "wheels" / name for dist, (version, name) in sorted(wheels.items())
              if installed_version(dist) != version]
    if not needed:
        return
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        fail(f"{missing[0]}: wheel listed in {PACKAGE_FILE} but not in the package")
    print(f"installing {len(needed)} packaged wheel(s) (no internet): {', '.join(p.name for p in needed)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                             *map(str, needed)], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"pip could not install the packaged wheels: {(result.stderr or result.stdout).strip().splitlines()[-1]}")
    importlib.invalidate_caches()


def verify_checkpoints(package: Path) -> None:
    """Every checkpoint's size and sha256 as package.json records them, or a one-line stop (no
    submission). lib.integrity needs only the standard library."""
    from lib.errors import ProjectError
    from lib.integrity import verify_package
    try:
        checked = verify_package(package)
    except ProjectError as exc:
        fail(str(exc))
    print(f"{checked} model file(s) (checkpoints, the matcher's verifier, the tuned settings) match the sizes and "
          f"sha256 in {PACKAGE_FILE}", flush=True)


def default_paths(kaggle: Path) -> tuple[Path, Path]:
    """(test images, submission) inside Kaggle; ./test_images and ./submission.csv elsewhere."""
    if (kaggle / "input").is_dir():
        return kaggle / "input" / COMPETITION / "test_images", kaggle / "working" / "submission.csv"
    return Path("test_images"), Path("submission.csv")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--package", type=Path, default=PACKAGE)
    pre.add_argument("--kaggle-root", type=Path, default=KAGGLE)
    known, _ = pre.parse_known_args(argv)
    package = known.package.resolve()
    asks_help = bool({"-h", "--help"} & set(argv))
    meta = None
    if (package / PACKAGE_FILE).is_file() or not asks_help:   # --help works outside a package too
        meta = read_package(package)
        sys.path.insert(0, str(package))
        verify_checkpoints(package)          # before a wheel is installed or torch imported
        ensure_dependencies(package, meta.get("wheels", {}))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from lib.cli import make_parser, run, setup_logging  # noqa: E402  (after the wheels are in)
    from lib.flags import from_args, given_dests
    from lib.options import PredictorOptions, add_inference_args

    input_dir, output = default_paths(known.kaggle_root)
    parser = make_parser(__doc__)
    parser.add_argument("--package", type=Path, default=PACKAGE, help="the package folder (default: this file's)")
    parser.add_argument("--kaggle-root", type=Path, default=KAGGLE,
                        help="where Kaggle's input/ and working/ are (default /kaggle)")
    parser.add_argument("--input-dir", type=Path, default=input_dir, help=f"images to predict (default {input_dir})")
    parser.add_argument("--output", type=Path, default=output, help=f"submission to write (default {output})")
    parser.add_argument("--logs-dir", type=Path, default=None, help="also log to a file there")
    add_inference_args(parser)
    if meta is not None:
        parser.set_defaults(**meta["arguments"], cache=False)   # the package is read-only in Kaggle

    def predict() -> int:
        args = parser.parse_args(argv)
        from lib.inference.infer import folder_images, post_config_from_args, predict_paths, write_predictions
        # packaged checkpoints are recorded relative to the package
        args.ensemble = [str(package / spec) if spec.startswith("models/") else spec
                         for spec in args.ensemble or []] or None
        log_file = setup_logging("kaggle_predict", args.logs_dir)
        validation = meta.get("validation")
        score = validation.get("score") if isinstance(validation, dict) else None
        score = score if type(score) in (int, float) else None
        print(f"package {package.name}: made {meta['created']}, validation score "
              f"{'not measured' if score is None else f'{score:.4f}'}", flush=True)
        config = post_config_from_args(args, package / "models", given_dests(parser, argv))
        images = folder_images(args.input_dir)
        results, described = predict_paths(from_args(PredictorOptions, args), package / "models", images,
                                           config.fusion, gate=config.classifier_threshold)
        print(described)
        print(write_predictions(results, config, args.output))
        if log_file:
            print(f"log: {log_file}")
        return 0

    run(predict)
    return 0


if __name__ == "__main__":
    main()
