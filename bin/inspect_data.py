#!/usr/bin/env python
"""Scan the training data, refresh the cached manifest and print what is there (and what is broken).

    python bin/inspect_data.py --data-dir demo
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.data.manifest import load_manifest, summarize_manifest
    paths = resolve_paths(args)
    setup_logging("inspect_data", paths.logs_dir)
    manifest = load_manifest(paths, include_problems=True)
    print(summarize_manifest(manifest))
    n_bad = int((manifest["problem"] != "").sum())
    logging.getLogger("inspect_data").info("%s: %d usable training images, %d skipped; manifest %s",
                                           paths.data_dir, len(manifest) - n_bad, n_bad, paths.manifest)
    return 0


if __name__ == "__main__":
    run(main)
