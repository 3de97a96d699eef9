#!/usr/bin/env python
"""The training-free copy-move matcher alone on a folder of images -> a validated submission.

    python bin/match_copy_move.py --input-dir demo/test_images --output matcher_submission.csv
    python bin/match_copy_move.py --input-dir demo/test_images --output m.csv --debug-dir logs/match_debug

Keypoint and dense (PatchMatch) self-matching, transforms fitted by RANSAC, exact masks from the
image compared with itself under each transform, each candidate judged by the verifier (the
committed default, or <models-dir>/match_verifier.json when the pipeline fitted one), one
instance per duplication event (source and copy together); see lib/matching/. --debug-dir
writes one PNG per image: the keypoints and each accepted event's inlier pairs (left), the
final instances and the panels (right), the events and the candidates below the threshold
and those dropped, with their reasons (below). Candidates are cached under <models-dir>/cache
(keyed by the matcher's code and config; the verifier is applied on reading).
"""
import logging
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import from_args  # noqa: E402
from lib.options import PostConfig, PredictorOptions, add_matcher_args, add_shared, add_switches  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("match_copy_move")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--input-dir", type=Path, required=True, help="folder of images")
    parser.add_argument("--output", type=Path, required=True, help="submission file to write")
    parser.add_argument("--debug-dir", type=Path, default=None, help="write a debug picture per image here")
    parser.add_argument("--matcher-threshold", type=float, default=None,
                        help="events of at least this probability of being a real copy count (default: the "
                             "verifier's own threshold; --matcher v1: the fine-detail correlation, default 0.85)")
    add_shared(parser, "match_workers", 2, "--workers")
    parser.add_argument("--no-dense", action="store_true", help="keypoint stage only")
    parser.add_argument("--no-keypoints", action="store_true", help="dense stage only")
    add_switches(parser, "cache", "progress")
    add_matcher_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.inference.fusion import MatchCache, matcher_of, run_matcher
    from lib.inference.infer import folder_images, result_of_match, write_predictions
    if args.match_workers < 1:
        raise ProjectError(f"--match-workers {args.match_workers}: must be at least 1")
    if args.no_dense and args.no_keypoints:
        raise ProjectError("--no-dense and --no-keypoints together leave no detector")
    try:
        post = PostConfig(fusion="matcher", matcher_threshold=args.matcher_threshold)
    except ValueError as exc:
        raise ProjectError(str(exc)) from None
    paths = resolve_paths(args)
    log_file = setup_logging("match_copy_move", paths.logs_dir)
    images = folder_images(args.input_dir)
    config, verifier, described = matcher_of(from_args(PredictorOptions, args), paths.models_dir)
    config = replace(config, keypoints=not args.no_keypoints, dense=not args.no_dense)
    log.info("%s on %d images", described, len(images))
    cache = None if not args.cache else MatchCache(paths.models_dir / "cache", config)
    matches = run_matcher(images, config, cache, args.match_workers, args.progress, debug_dir=args.debug_dir,
                          verifier=verifier)
    written = write_predictions([result_of_match(m) for m in matches], post, args.output)
    timed = [m.seconds for m in matches if not m.error and m.seconds > 0]
    if timed:
        log.info("matcher time per image: mean %.2fs, max %.2fs", sum(timed) / len(timed), max(timed))
    if args.debug_dir is not None:
        log.info("debug pictures: %s", args.debug_dir)
    print(written)
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
