#!/usr/bin/env python
"""Fit the matcher's verifier: the probability that a candidate duplication is a real copy.

    python bin/train_match_verifier.py --data-dir DATA              # -> <models-dir>/match_verifier.json
    python bin/train_match_verifier.py --data-dir bench --include-val --default   # the committed default

Runs the copy-move matcher over the training split's figures and --negatives synthetic hard
negatives (lettering, periodic texture; candidates and their features cached under
<models-dir>/cache, so a re-fit takes seconds), labels each candidate by its
overlap with the true masks (at least half inside: a real copy), fits gradient-boosted trees
with cross-validation grouped by figure, chooses the figure threshold that maximises the
competition score on the out-of-fold probabilities (--forged-share weighs forged figures as
that share of the test set), and writes the verifier as JSON (no code runs when it is loaded).
The matcher then uses it whenever it sits in the models folder.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.options import DEFAULT_VERIFIER, VERIFIER_NAME, VERIFIER_NEGATIVES, add_shared, add_switches  # noqa: E402
from lib.paths import ROOT, add_path_args, git_commit, resolve_paths  # noqa: E402

log = logging.getLogger("train_match_verifier")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"verifier file to write (default: <models-dir>/{VERIFIER_NAME})")
    parser.add_argument("--default", action="store_true",
                        help=f"write the committed default verifier ({DEFAULT_VERIFIER.relative_to(ROOT)})")
    parser.add_argument("--include-val", action="store_true",
                        help="fit on the validation split's figures too (a benchmark whose held-out figures are "
                             "its test_images)")
    parser.add_argument("--forged-share", type=float, default=None,
                        help="choose the threshold as if forged figures were this share of the test set")
    parser.add_argument("--negatives", type=int, default=VERIFIER_NEGATIVES,
                        help=f"synthetic hard negatives (lettering, periodic texture) added to the training figures "
                             f"(default {VERIFIER_NEGATIVES})")
    parser.add_argument("--keep-worse", action="store_true",
                        help="write the fitted verifier even when the committed default scores better on these "
                             "figures (by default it is then not written, and the default stays in use)")
    parser.add_argument("--folds", type=int, default=5, help="grouped cross-validation folds (default 5)")
    add_shared(parser, "seed", 0)
    add_shared(parser, "match_workers", 2, "--workers")
    add_switches(parser, "cache", "progress")
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.training.verifier import train_from_layout
    if args.forged_share is not None and not 0 < args.forged_share < 1:
        raise ProjectError(f"--forged-share {args.forged_share}: must lie in (0, 1)")
    if args.folds < 2 or args.match_workers < 1 or args.negatives < 0:
        raise ProjectError("--folds must be at least 2, --match-workers at least 1 and --negatives at least 0")
    paths = resolve_paths(args)
    log_file = setup_logging("train_match_verifier", paths.logs_dir)
    output = DEFAULT_VERIFIER if args.default else args.output or paths.models_dir / VERIFIER_NAME
    command = "python bin/train_match_verifier.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        verifier, report = train_from_layout(paths, args.include_val, args.seed, args.folds, args.forged_share,
                                             args.match_workers, args.cache, args.progress, args.negatives)
    except ValueError as exc:
        raise ProjectError(str(exc)) from None
    verifier.training.update(command=command, commit=git_commit() or "unknown")
    log.info("verifier fitted on %d candidates (%d real copies) of %d figures (%d forged)", report["candidates"],
             report["positives"], report["figures"], report["forged_figures"])
    log.info("grouped %d-fold out-of-fold AUC: candidates %.3f, figures %.3f", report["folds"],
             report["candidate_auc"], report["figure_auc"])
    log.info("threshold %.2f: out-of-fold score %.4f%s; score by threshold: %s", report["threshold"],
             report["score"], f" (forged share {args.forged_share:g})" if args.forged_share else "",
             " ".join(f"{t}:{v:.3f}" for t, v in report["curve"].items()))
    log.info("the committed default verifier on the same figures: %.4f", report["default_score"])
    if report["default_score"] > report["score"] and not (args.keep_worse or args.default):
        log.warning("the committed default scores better on these figures (%.4f > %.4f out of fold): %s not "
                    "written, the matcher keeps the default (--keep-worse writes it anyway)%s",
                    report["default_score"], report["score"], output,
                    f"; {output} from an earlier run is still there and still used" if output.is_file() else "")
        print(f"log: {log_file}")
        return 0
    verifier.save(output)
    print(f"verifier: {output} ({output.stat().st_size / 1024:.0f} KiB)")
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
