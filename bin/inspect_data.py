#!/usr/bin/env python
"""Scan the training data, refresh the cached manifest and print what is there (and what is broken).

Every image the readers will refuse is one warning naming it: unreadable, truncated, over the
pixel budget (lib/imageio.py MAX_PIXELS, read from its header), a mask that does not fit; and
every entry named like an image that is no image file (a dangling link, a folder, a name that
is not UTF-8). Training skips them all.

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
    n_entries = len(manifest.attrs.get("skipped", []))
    not_files = f", and {n_entries} entries named like images that are no image files" if n_entries else ""
    logging.getLogger("inspect_data").info("%s: %d usable training images, %d skipped (what the readers refuse, "
                                           "one warning each above)%s; manifest %s", paths.data_dir,
                                           len(manifest) - n_bad, n_bad, not_files, paths.manifest)
    return 0


if __name__ == "__main__":
    run(main)
