#!/usr/bin/env python
"""Check a submission.csv before uploading: header, one row per test image, well-formed RLEs inside each image.

    python bin/check_submission.py submission.csv --input-dir test_images
    python bin/check_submission.py submission.csv --solution demo/solution.csv
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

MAX_LINES = 50


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("submission", type=Path, help="the CSV to check")
    add_renamed(parser, "--test-dir", "--input-dir", type=Path, default=None,
                        help="folder of test images the rows must match (default: <data-dir>/test_images)")
    parser.add_argument("--solution", type=Path, default=None,
                        help="check ids and bounds against a solution CSV instead of a test folder")
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.competition.metric import AUTHENTIC
    from lib.competition.submission import read_submission, validate_submission_file

    test_dir = args.input_dir
    if test_dir is None and args.solution is None:
        test_dir = resolve_paths(args).test_images
    problems = validate_submission_file(args.submission, test_dir=test_dir, solution=args.solution)
    if problems:
        for line in problems[:MAX_LINES]:
            print(f"{args.submission}: {line}")
        if len(problems) > MAX_LINES:
            print(f"... and {len(problems) - MAX_LINES} more")
        print(f"INVALID: {len(problems)} problem(s) in {args.submission}")
        return 1
    frame = read_submission(args.submission)
    forged = int((frame["annotation"] != AUTHENTIC).sum())
    against = f"test images in {test_dir}" if test_dir is not None else f"solution {args.solution}"
    print(f"OK: {args.submission} has {len(frame)} rows ({forged} forged, {len(frame) - forged} "
          f"authentic), matching the {against}")
    return 0


if __name__ == "__main__":
    run(main)
