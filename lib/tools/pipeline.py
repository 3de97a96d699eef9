"""The full pipeline (bin/full_pipeline.py): which phases run, the bin/ scripts each runs as a
subprocess, and how failures are handled.

Phases (README, "The full pipeline"): 0 augmented data (only with --augment), 1 initial training (the
v3 segmentation variants and the classifier), 2 hard-negative mining, 3 retraining with
the hard negatives (v4, classifier, small-forgery specialist), 4 inference -> submission.csv.
Each step is exactly the command a user would type, so any phase can be re-run by hand. A
failing step stops a full run (exit 1); with --phase, the other
requested phases still run; a failed mining is reported and the pipeline goes on without
new hard negatives (the seeds' graceful degradation).
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..imageio import list_images
from ..models.variants import V3_VARIANTS
from ..options import AUTO
from ..paths import BEST_SUFFIX, HARD_NEGATIVES_FILE, LEGACY_BEST_SUFFIX, ROOT, best_checkpoint, relative

log = logging.getLogger("full_pipeline")

BIN = ROOT / "bin"
PHASES = {0: "augmented data", 1: "initial training", 2: "hard-negative mining",
          3: "retraining with hard negatives", 4: "inference"}
MINING = 2
RULE = "=" * 70


@dataclass
class Step:
    """One bin/ script run as a subprocess."""

    name: str
    script: str
    args: list[str] = field(default_factory=list)
    weight: float = 1.0          # its expected share of the run's time, against the others' (the estimate)

    def command(self) -> list[str]:
        return [sys.executable, str(BIN / self.script), *self.args]

    def shown(self) -> str:
        """The command line as a user would type it from the repository root."""
        return " ".join(["python", f"bin/{self.script}", *self.args])


@dataclass
class PhaseResult:
    phase: int
    status: str = "not run"       # ok | failed | interrupted | planned (--dry-run)
    seconds: float = 0.0
    note: str = ""


def select_phases(phases: Sequence[int] | None, skip_initial: bool = False, skip_mining: bool = False,
                  skip_retrain: bool = False, inference_only: bool = False, augment: bool = False) -> list[int]:
    """The phases to run, in order. --phase wins over the skip flags; --skip-retrain means
    phases 1-2 (the seeds' "day 1"), to be followed by --skip-initial --skip-mining."""
    if phases:
        return sorted(set(phases))
    if inference_only:
        return [4]
    selected = [0] if augment else []
    selected += [p for p, skip in ((1, skip_initial), (2, skip_mining), (3, skip_retrain), (4, skip_retrain))
                 if not skip]
    return selected


def parse_phases(values: Sequence[str] | None) -> list[int] | None:
    """--phase 2, --phase 1 --phase 4 or --phase 1,4 -> [1, 4]; a clear error for anything else."""
    if not values:
        return None
    phases = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip().isdigit() or int(part) not in PHASES:
                raise ValueError(f"--phase {value}: phases are {', '.join(map(str, PHASES))}")
            phases.append(int(part))
    return phases


STEP_GRACE = 10.0         # seconds an interrupted step has to end on its own before SIGINT is passed on


def run_step(step: Step) -> int:
    """Run a step, streaming its output line by line into the log; its exit code. On Ctrl-C
    (KeyboardInterrupt, re-raised) the step is interrupted too, and its last words are logged."""
    log.info("Running: %s", step.shown())
    process = subprocess.Popen(step.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               bufsize=1, cwd=BIN.parent)
    assert process.stdout is not None
    try:
        for line in process.stdout:
            log.info("    %s", line.rstrip("\n"), extra={"raw": True})
        return process.wait()
    except KeyboardInterrupt:
        # a Ctrl-C in the terminal reached the step too: let it end on its own (a second SIGINT would
        # land in its clean-up); a `kill -INT` of the pipeline alone did not, so after STEP_GRACE it is passed on
        try:
            rest, _ = process.communicate(timeout=STEP_GRACE)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                rest, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                rest, _ = process.communicate()
        for line in (rest or "").splitlines():
            log.info("    %s", line, extra={"raw": True})
        raise


def banner(title: str) -> None:
    log.info(RULE)
    log.info(" %s", title)
    log.info(RULE)


def execute(plan: dict[int, list[Step]], stop_on_failure: bool, checks: dict[int, str] | None = None,
            dry_run: bool = False) -> tuple[list[PhaseResult], bool]:
    """Run the phases of `plan` in order. `checks` holds, per phase, why its inputs are missing
    (that phase is failed without running). Returns the phase results and whether to exit 1."""
    results, failed = [], False
    clock = StepClock([step.weight for steps in plan.values() for step in steps])
    for phase, steps in plan.items():
        result = PhaseResult(phase)
        results.append(result)
        banner(f"PHASE {phase}: {PHASES[phase].upper()}")
        started = time.perf_counter()
        missing = (checks or {}).get(phase)
        if missing and not dry_run:
            log.error("Phase %d cannot run: %s", phase, missing)
            result.status, result.note = "failed", missing
        else:
            if missing:
                log.warning("(when run) phase %d would stop here: %s", phase, missing)
                result.note = f"would stop: {missing}"
            result.status = "ok"
            for step in steps:
                if dry_run:
                    log.info("Would run: %s", step.shown())
                    continue
                log.info("--- step %s: %s", clock.start(step.weight), step.name)
                try:
                    code = run_step(step)
                except KeyboardInterrupt:
                    result.status, result.note = "interrupted", f"during {step.script}"
                    result.seconds = time.perf_counter() - started
                    return results, True
                clock.finish()
                if code != 0:
                    log.error("Phase %d (%s) failed: %s exited with code %d", phase, PHASES[phase],
                              step.script, code)
                    result.status, result.note = "failed", f"{step.script} exit {code}"
                    break
                log.info("%s complete.", step.name[0].upper() + step.name[1:])
            if dry_run and result.status != "failed":
                result.status = "planned"
        result.seconds = time.perf_counter() - started
        log.info("Phase %d %s in %s", phase, result.status, duration(result.seconds))
        if result.status == "failed":
            if phase == MINING:
                log.warning("Mining failed: the pipeline goes on without new hard negatives")
                continue
            failed = True
            if stop_on_failure:
                break
    return results, failed


class StepClock:
    """Where a run is: 'step k of n', the time so far, and an estimate of the time left from
    the steps done (their time per unit of weight, times the weight still to come)."""

    def __init__(self, weights: Sequence[float]):
        self.weights = list(weights)
        self.started = time.perf_counter()
        self.done = 0            # steps finished
        self.done_weight = 0.0

    def start(self, weight: float) -> str:
        elapsed = time.perf_counter() - self.started
        left = sum(self.weights[self.done:])
        estimate = (f", about {duration(elapsed / self.done_weight * left)} left" if self.done_weight > 0
                    else "")
        return f"{self.done + 1} of {len(self.weights)} ({duration(elapsed)} so far{estimate})"

    def finish(self) -> None:
        self.done_weight += self.weights[self.done]
        self.done += 1


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def continue_command(argv: Sequence[str], phases: Sequence[int]) -> str:
    """The command that goes on after an interrupt: the same flags, the phase selection replaced
    by `phases` (the interrupted one and those after it), and --overwrite (the interrupted step's
    run starts anew; finished runs are moved to previous/ only when replaced)."""
    selection = {"--skip-initial", "--skip-mining", "--skip-retrain", "--inference-only", "--dry-run", "--phase"}
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split("=", 1)[0]
        if name in selection:
            skip = name == "--phase" and "=" not in token
            continue
        kept.append(token)
    overwrite = [] if "--overwrite" in kept or "--demo" in kept else ["--overwrite"]
    return " ".join(["python bin/full_pipeline.py", *kept, "--phase", ",".join(map(str, phases)), *overwrite])


def summary_table(results: Sequence[PhaseResult]) -> str:
    lines = [f"{'phase':<7}{'name':<34}{'status':<10}{'time':>10}  note"]
    lines += [f"{r.phase:<7}{PHASES[r.phase]:<34}{r.status:<10}{duration(r.seconds):>10}  {r.note}"
              for r in results]
    return "\n".join(lines)


# --- the steps of each phase -------------------------------------------------------------------

def build_plan(phases: Sequence[int], common: list[str], train: list[str], thresholds: list[str], fusion: str,
               test_dir: Path, output: Path, authentic_dir: Path | None, device: Sequence[str] = ()
               ) -> dict[int, list[Step]]:
    """Each selected phase's steps. `common`: path flags every script takes; `train`: training
    flags (epochs, size, device, ...); `thresholds` and `fusion`: post-processing for mining and
    inference; `device`: the --device flag of the predicting steps."""
    train_all = [*common, *train]
    post = [*thresholds, "--fusion", fusion, *device]
    # --fusion auto: mining looks for the networks' false positives; inference runs what the held-out
    # split validated (its thresholds are the ones it was validated at, in <models-dir>/postprocess.json)
    mining = [*thresholds, "--fusion", "network", *device] if fusion == AUTO else post
    inference = ["--fusion", AUTO, *device] if fusion == AUTO else post
    steps = {
        0: [Step("forged augmentation", "generate_forged_augmented.py", list(common)),
            Step("authentic augmentation", "generate_authentic_augmented.py", list(common))],
        # the verifier first (cheap on the CPU: the matcher's candidates on the training split, labelled by
        # the masks): the self-correlation variant's maps then come from it and from its cached candidates
        1: [Step("copy-move matcher verifier", "train_match_verifier.py", list(common), weight=2),
            Step("initial segmentation training (v3 variants)", "script_1_train_v3.py",
                 [*train_all, "--no-hard-negatives"], weight=5),
            Step("initial classifier training", "script_2_train_classifier.py", [*train_all, "--no-hard-negatives"])],
        2: [Step("hard-negative mining", "find_hard_negatives.py",
                 [*common, "--stage", "v3", *mining,
                  *(["--authentic-dir", relative(authentic_dir)] if authentic_dir else [])])],
        3: [Step("v4 fine-tuning with hard negatives", "script_3_train_v4.py", train_all, weight=5),
            # the seeds' phase 3 replaces phase 1's classifier (kept in <models>/previous/)
            Step("classifier retraining with hard negatives", "script_2_train_classifier.py",
                 [*train_all, *(["--overwrite"] if "--overwrite" not in train_all else [])]),
            Step("small-forgery specialist training", "script_4_small_specialist.py", train_all)],
        4: [Step("inference", "script_5_predict.py",
                 [*common, *inference, "--input-dir", relative(test_dir), "--output", relative(output)])],
    }
    if fusion == AUTO:
        # --fusion auto: the held-out split chooses the rule first (written beside the models, read by inference)
        steps[4].insert(0, Step("fusion rule on the held-out split", "validate_test.py",
                                [*common, *thresholds, "--compare-fusion", *device]))
    return {phase: steps[phase] for phase in phases}


def input_problems(phases: Sequence[int], data_dir: Path, models_dir: Path, test_dir: Path,
                   fusion: str) -> dict[int, str]:
    """Per phase, what its inputs lack and what to run first (checked before anything runs;
    a phase that an earlier selected phase will feed is not flagged)."""
    problems = {}
    legacy = sorted(models_dir.glob(f"*{LEGACY_BEST_SUFFIX}"))
    convert = (f"; it holds checkpoints of an earlier version: python bin/convert_checkpoint.py "
               f"{models_dir}/*{LEGACY_BEST_SUFFIX}" if legacy else "")
    has_train = bool(list_images(data_dir / "train_images", recursive=True))
    v3 = [best_checkpoint(models_dir, f"{v.name}_v3") for v in V3_VARIANTS.values()]
    trains_first = 1 in phases
    for phase in phases:
        if phase in (0, 1, 2, 3) and not has_train:
            problems[phase] = f"no training images under {data_dir / 'train_images'}"
        elif phase in (2, 3) and not trains_first and not any(p.is_file() for p in v3):
            problems[phase] = f"no v3 checkpoints in {models_dir}: run --phase 1 first{convert}"
        elif phase == 3 and 2 not in phases and not (data_dir / HARD_NEGATIVES_FILE).is_file():
            # script_3_train_v4.py stops without the mined list: say so before anything runs
            problems[phase] = f"no hard-negative file {data_dir / HARD_NEGATIVES_FILE}: run --phase 2 first"
        elif phase == 4:
            if not list_images(test_dir):
                problems[phase] = f"no test images in {test_dir}"
            elif fusion == AUTO and not has_train:
                problems[phase] = (f"--fusion auto compares the rules on the held-out split, and there are no "
                                   f"training images under {data_dir / 'train_images'}: choose --fusion")
            elif fusion != "matcher" and not trains_first and not any(models_dir.glob(f"*_v[34]{BEST_SUFFIX}")):
                problems[phase] = (f"no segmentation checkpoints in {models_dir}: run --phase 1 first "
                                   f"(or --fusion matcher, which needs none){convert}")
    return problems
