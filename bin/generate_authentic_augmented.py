#!/usr/bin/env python
"""Augmented copies of the authentic training images, in light / medium / strong strengths (phase 0).

    python bin/generate_authentic_augmented.py                       # 3 copies: light, medium, strong
    python bin/generate_authentic_augmented.py --copies 2 --strengths medium,strong --data-dir demo

Writes <data-dir>/train_images/authentic_augmented/<id>_aug<k>_<strength>.png; copy k uses the
k-th strength of --strengths (cycling). Light: flips or rotation up to 15 degrees, mild colour.
Medium: up to 30 degrees or a small affine, colour, blur / noise, JPEG 70-95. Strong: up to 45
degrees, shear or perspective, gamma / CLAHE, motion blur, several noises, JPEG 50-90 or
down-and-up scaling. Uncovered borders are filled black, never mirrored (a mirrored border is a
duplicated region on an image labelled authentic). Only training-split images are augmented;
copies already there are kept (--overwrite remakes them); a sample sheet is written next to the log.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.options import AUTHENTIC_STRENGTHS, add_generation_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--multiplier", "--copies", type=int, default=3,
                help="augmented copies per authentic image (default: 3)")
    parser.add_argument("--strengths", default=",".join(AUTHENTIC_STRENGTHS),
                        help=f"comma-separated, cycled over the copies (default: {','.join(AUTHENTIC_STRENGTHS)})")
    add_generation_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.data.augmented_data import finish, generate_authentic, parse_strengths
    paths = resolve_paths(args)
    strengths = parse_strengths(args.strengths)
    log_file = setup_logging("generate_authentic_augmented", paths.logs_dir)
    report = generate_authentic(paths, args.copies, strengths, args.seed, args.jobs, args.overwrite,
                                args.limit, args.progress, args.samples)
    return finish(report, log_file)


if __name__ == "__main__":
    run(main)
