#!/usr/bin/env python
"""Augmented copies of the forged training images, masks moved with them (phase 0).

    python bin/generate_forged_augmented.py                          # 3 copies per image
    python bin/generate_forged_augmented.py --copies 5 --jobs 4 --data-dir demo

Writes <data-dir>/train_images/forged_augmented/<id>_aug<k>.png and
<data-dir>/train_masks_augmented/<id>_aug<k>.npy. Geometry (flip, 90-degree or up to 15-degree
rotation, crop or rescale) moves the image and every instance mask together, instances kept
separate; colour, blur, noise and JPEG touch the image only. A copy whose forgery was cropped
away is skipped and counted. Only training-split images are augmented; the training scripts
use the copies unless given --no-augmented. Copies already there are kept (re-running resumes;
--overwrite remakes them). A sheet of originals beside their copies is written next to the log.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.options import add_generation_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--copies", type=int, default=3, help="augmented copies per forged image (default: 3)")
    add_generation_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.data.augmented_data import finish, generate_forged
    paths = resolve_paths(args)
    log_file = setup_logging("generate_forged_augmented", paths.logs_dir)
    report = generate_forged(paths, args.copies, args.seed, args.jobs, args.overwrite, args.limit,
                             args.progress, args.samples)
    return finish(report, log_file)


if __name__ == "__main__":
    run(main)
