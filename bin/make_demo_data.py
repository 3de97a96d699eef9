"""Write a small synthetic copy-move dataset in the Kaggle layout (train, supplemental, test,
solution.csv), to run the whole pipeline without the competition data.

    python bin/make_demo_data.py --output-dir demo
    python bin/make_demo_data.py --output-dir demo --n-forged 200 --seed 1 --overwrite
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import time  # noqa: E402

from lib.cli import make_parser, run  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.options import add_shared  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--out", "--output-dir", type=Path, required=True,
                        help="output folder (relative to the current directory)")
    parser.add_argument("--n-forged", type=int, default=60, help="forged training images (default: 60)")
    parser.add_argument("--twin-fraction", type=float, default=0.85,
                        help="fraction of forged training images with an authentic twin (default: 0.85)")
    parser.add_argument("--n-test", type=int, default=24, help="test images (default: 24)")
    parser.add_argument("--test-forged-fraction", type=float, default=0.5,
                        help="fraction of the test images that are forged (default: 0.5)")
    parser.add_argument("--n-supplemental", type=int, default=4,
                        help="supplemental forged images (default: 4)")
    parser.add_argument("--min-size", type=int, default=192, help="smallest image side (default: 192)")
    parser.add_argument("--max-size", type=int, default=640, help="largest image side (default: 640)")
    parser.add_argument("--jpeg-prob", type=float, default=0.2,
                        help="probability that an image is JPEG re-compressed (default: 0.2)")
    add_shared(parser, "seed", 0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the generated folders and CSVs of a non-empty --output-dir")
    args = parser.parse_args(argv)
    from lib.data.demo import format_summary, make_demo_dataset
    start = time.perf_counter()
    summary = make_demo_dataset(
        args.output_dir, n_forged=args.n_forged, twin_fraction=args.twin_fraction, n_test=args.n_test,
        test_forged_fraction=args.test_forged_fraction, n_supplemental=args.n_supplemental,
        min_size=args.min_size, max_size=args.max_size, seed=args.seed, jpeg_prob=args.jpeg_prob,
        overwrite=args.overwrite)
    print(format_summary(summary, args.output_dir, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    run(main)
