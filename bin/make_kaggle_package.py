#!/usr/bin/env python
"""Package the models for Kaggle's offline notebook run (a code competition).

    python bin/make_kaggle_package.py --output-dir kaggle_package          # what was validated for the models
    python bin/make_kaggle_package.py --output-dir pkg --fusion first --seg-threshold 0.4 --no-wheels
    python bin/make_kaggle_package.py --output-dir pkg --fusion matcher --no-wheels   # no networks needed

Writes one folder: lib/, bin/kaggle_predict.py (the offline entry point), models/ (the ensemble
the predictor would load from --models-dir, the classifier and the specialist), wheels/ (the
exact versions of segmentation-models-pytorch, albumentations and their compiled helpers used
here, downloaded now for Kaggle's Python, so the notebook installs nothing from the internet),
package.json (versions, predictor settings, thresholds, file hashes, the validation score),
dataset-metadata.json, and notebook/ (the .ipynb and kernel-metadata.json). Thresholds and
fusion (--fusion auto, the default): those validated for the models, <models-dir>/postprocess.json
(validate_test.py --compare-fusion / --sweep; its key checked against the checkpoints, the matcher
and its verifier, and the file packaged with them), or without it the matcher alone at its
verifier's threshold (no network packaged); with --fusion, the post-processing flags. Upload:

    kaggle datasets create -p kaggle_package          # later: kaggle datasets version -p kaggle_package -m "v2"
    kaggle kernels push -p kaggle_package/notebook     # then submit the notebook's output
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import add_args, add_renamed, from_args, given_dests  # noqa: E402
from lib.options import AUTO, KAGGLE_PYTHON, PACKAGED, PredictorOptions, add_post_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


SWEEP_GONE = ("--sweep: the thresholds come from what was validated for the models, <models-dir>/postprocess.json "
              "(python bin/validate_test.py --sweep writes it; a sweep file in the logs is not tied to any "
              "models), or from the flags with --fusion")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--output", "--output-dir", type=Path, required=True, help="package folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package folder")
    parser.add_argument("--sweep", default=None, help=argparse.SUPPRESS)   # gone: see SWEEP_GONE
    add_args(PredictorOptions, parser, "predictor (recorded as the package's defaults)", only=PACKAGED)
    wheels = parser.add_argument_group("wheels")
    wheels.add_argument("--wheels-from", type=Path, default=None, help="copy the wheels from this folder, no download")
    wheels.add_argument("--no-wheels", action="store_true",
                        help="no wheels (the notebook's image must already have every package)")
    wheels.add_argument("--python-version", default=KAGGLE_PYTHON,
                        help=f"Python of Kaggle's image, for compiled wheels (default {KAGGLE_PYTHON})")
    kaggle = parser.add_argument_group("kaggle")
    kaggle.add_argument("--kaggle-user", default="YOUR_KAGGLE_USERNAME", help="owner in the metadata files")
    kaggle.add_argument("--dataset-slug", default="copy-move-forgery-package", help="the dataset's name on Kaggle")
    add_post_args(parser, fusion=AUTO)
    add_path_args(parser)
    args = parser.parse_args(argv)
    if args.sweep is not None:
        raise ProjectError(SWEEP_GONE)
    from lib.inference.infer import post_and_tuning_from_args
    from lib.tools.kaggle import PackageOptions, build_package, describe, validation_record
    paths = resolve_paths(args)
    setup_logging("make_kaggle_package", paths.logs_dir)
    config, tuned = post_and_tuning_from_args(args, paths.models_dir, given_dests(parser, argv))   # key checked
    validation = validation_record(tuned, args.fusion == AUTO)
    print(f"post-processing: {config.summary()} ({tuned.describe() if tuned else validation['note']})")
    if args.no_wheels and args.wheels_from:
        raise ProjectError("--no-wheels and --wheels-from: choose one")
    options = PackageOptions(predictor=from_args(PredictorOptions, args),
                             wheels="none" if args.no_wheels else str(args.wheels_from or "download"),
                             python_version=args.python_version, kaggle_user=args.kaggle_user,
                             dataset_slug=args.dataset_slug, overwrite=args.overwrite)
    meta = build_package(args.output_dir, paths.models_dir, config, validation, options,
                         tuned.path if tuned else None)
    for record in meta["checkpoints"]:
        weight = f" (weight {record['weight']:g})" if record["weight"] else ""
        print(f"  {record['role']:<10} {record['file']}{weight}")
    models = [r for r in meta["checkpoints"] if r["role"] not in ("verifier", "postprocess")]
    print(f"{args.output_dir}: {len(models)} checkpoints and the matcher's verifier, {len(meta['wheels'])} wheels\n"
          f"{describe(args.output_dir)}")
    return 0


if __name__ == "__main__":
    run(main)
