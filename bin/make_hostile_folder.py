#!/usr/bin/env python
"""Write a folder of hostile and odd inputs beside good images, to run any reader of the project on.

    python bin/make_hostile_folder.py --output-dir hostile
    python bin/script_5_predict.py --input-dir hostile --output hostile.csv --models-dir demo/models
    python bin/match_copy_move.py --input-dir hostile --output hostile_matcher.csv

A header claiming a pixel bomb, images of a side of 1 to 8 px, empty, corrupt and truncated
files, 16-bit, gray with alpha and float pixels (one of them inf), a name that is not UTF-8, a
link to a good image, a dangling link, a link loop, a folder and a pipe named like images.
Every image file must get its row (a guess for the unreadable ones, one warning each); the
entries that are not image files one warning each and no row. With --large, a real
30000 x 30000 PNG (refused by the pixel budget) and a 10000 x 10000 one (the largest within it)
for measuring memory: a few seconds more and about 1 GB of memory to write.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run  # noqa: E402
from lib.errors import ProjectError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--output-dir", type=Path, required=True, help="folder to write (must not exist or be empty)")
    parser.add_argument("--large", action="store_true", help="add the 30000 px and 10000 px images")
    args = parser.parse_args(argv)
    from lib.tools.hostile import EXPECTED, LARGE, write_hostile_folder
    try:
        folder = write_hostile_folder(args.output_dir, large=args.large)
    except FileExistsError:
        raise ProjectError(f"{args.output_dir}: not empty; choose another --output-dir") from None
    expected = {**EXPECTED, **(LARGE if args.large else {})}
    rows = sum(v != "skipped" for v in expected.values())
    print(f"{folder}: {len(expected)} entries, {rows} of them image files that must get a row "
          f"({sum(v == 'unreadable' for v in expected.values())} unreadable), "
          f"{len(expected) - rows} to be skipped with a warning")
    return 0


if __name__ == "__main__":
    run(main)
