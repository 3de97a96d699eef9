"""bin/full_pipeline.py: phase selection and skip flags give the right plan, a failing phase stops
a full run with exit 1 and lets a --phase run go on, mining failures do not stop it, the log
has the banners, the commands and the summary; clear errors for bad flags and missing data."""
import functools
import logging
import re
import signal
import sys
import time

import pytest

from lib.cli import setup_logging
from lib.data import demo
from lib.tools.pipeline import (Step, StepClock, banner, continue_command, execute, input_problems, parse_phases,
                                select_phases, summary_table)
from tests.helpers import make_layout, run_script


@pytest.mark.parametrize("flags, phases", [
    ({}, [1, 2, 3, 4]),
    ({"augment": True}, [0, 1, 2, 3, 4]),
    ({"skip_initial": True}, [2, 3, 4]),
    ({"skip_initial": True, "skip_mining": True}, [3, 4]),
    ({"skip_retrain": True}, [1, 2]),
    ({"inference_only": True}, [4]),
    ({"phases": [4, 2], "skip_mining": True}, [2, 4]),       # --phase wins over the skip flags
])
def test_phase_selection(flags, phases):
    assert select_phases(flags.pop("phases", None), **flags) == phases


def test_phase_flags_parse():
    assert parse_phases(["2"]) == [2]
    assert parse_phases(["1", "4"]) == parse_phases(["1,4"]) == [1, 4]
    assert parse_phases(None) is None
    with pytest.raises(ValueError, match="phases are 0, 1, 2, 3, 4"):
        parse_phases(["7"])


class Fake(Step):
    """A step that prints a line and exits with `code`, instead of a bin/ script."""

    def __init__(self, name: str, code: int = 0):
        super().__init__(name, f"fake_{name}.py")
        self.code = code

    def command(self) -> list[str]:
        return [sys.executable, "-c", f"print('hello from {self.name}'); raise SystemExit({self.code})"]


def plan(fail_at: int) -> dict:
    return {p: [Fake(f"step{p}", 3 if p == fail_at else 0)] for p in (1, 2, 3, 4)}


def test_a_failing_phase_stops_a_full_run():
    results, failed = execute(plan(fail_at=3), stop_on_failure=True)
    assert failed
    assert [(r.phase, r.status) for r in results] == [(1, "ok"), (2, "ok"), (3, "failed")]
    assert "exit 3" in results[-1].note


def test_with_phase_given_the_other_phases_still_run():
    results, failed = execute(plan(fail_at=3), stop_on_failure=False)
    assert failed
    assert [r.status for r in results] == ["ok", "ok", "failed", "ok"]


def test_a_failed_mining_does_not_stop_the_pipeline():
    results, failed = execute(plan(fail_at=2), stop_on_failure=True)
    assert not failed
    assert [r.status for r in results] == ["ok", "failed", "ok", "ok"]


def test_missing_inputs_fail_the_phase_before_it_runs(tmp_path):
    make_layout(tmp_path / "data")
    problems = input_problems([3, 4], tmp_path / "data", tmp_path / "models", tmp_path / "data" / "test_images",
                              "network")
    assert "run --phase 1 first" in problems[3] and "run --phase 1 first" in problems[4]
    assert "convert_checkpoint" not in problems[4]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "highres_no_ela_v3_best.pth").write_bytes(b"PK")     # an earlier version's file
    problems = input_problems([3, 4], tmp_path / "data", tmp_path / "models", tmp_path / "data" / "test_images",
                              "network")
    assert all(f"python bin/convert_checkpoint.py {tmp_path / 'models'}/*_best.pth" in problems[p] for p in (3, 4))
    assert 4 not in input_problems([4], tmp_path / "data", tmp_path / "models", tmp_path / "data" / "test_images",
                                   "matcher")                    # the matcher needs no checkpoint
    assert input_problems([1, 2, 3, 4], tmp_path / "data", tmp_path / "models",
                          tmp_path / "data" / "test_images", "network") == {}   # phase 1 feeds the others
    (tmp_path / "models" / "highres_no_ela_v3_best.safetensors").write_bytes(b"{}")
    problems = input_problems([3], tmp_path / "data", tmp_path / "models", tmp_path / "data" / "test_images",
                              "network")                      # v4 fine-tuning stops without the mined list
    assert problems == {3: f"no hard-negative file {tmp_path / 'data' / 'hard_negative_ids.txt'}: run --phase 2 first"}
    (tmp_path / "data" / "hard_negative_ids.txt").write_text("authentic/1\n")
    assert input_problems([3], tmp_path / "data", tmp_path / "models", tmp_path / "data" / "test_images",
                          "network") == {}
    results, failed = execute({3: [Fake("never")]}, stop_on_failure=True, checks={3: "no v3 checkpoints"})
    assert failed and results[0].status == "failed" and results[0].note == "no v3 checkpoints"


def test_the_log_has_banners_commands_child_output_and_the_summary(tmp_path):
    log_file = setup_logging("full_pipeline", tmp_path)
    results, failed = execute({1: [Fake("first")], 3: [Fake("child")]}, stop_on_failure=True)
    banner("SUMMARY")
    logging.getLogger("full_pipeline").info("\n%s", summary_table(results))
    text = log_file.read_text()
    assert "[INFO] ======" in text and " PHASE 1: INITIAL TRAINING" in text and " SUMMARY" in text
    assert "Running: python bin/fake_first.py" in text
    assert "\n    hello from first\n" in text                          # the child's line, as it printed it
    assert "phase  name" in text and "initial training" in text and "retraining" in text
    assert not failed


def test_runs_of_one_process_in_one_second_log_to_their_own_files(tmp_path):
    files = [setup_logging("script", tmp_path) for _ in range(3)]     # well within one second
    assert len(set(files)) == 3 and all(path.parent == tmp_path for path in files)


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    make_layout(tmp_path / "data")
    result = run_script("full_pipeline.py", "--dry-run", "--skip-initial", "--seg-threshold", "0.4", "--data-dir",
                        tmp_path / "data", "--models-dir", tmp_path / "models", "--logs-dir", tmp_path / "logs",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Would run: python bin/find_hard_negatives.py" in result.stderr
    assert "Would run: python bin/script_5_predict.py" in result.stderr
    assert "script_1_train_v3.py" not in result.stderr
    # --fusion auto (the default): mining looks for the networks' false positives, the held-out split
    # chooses at the thresholds given, and inference runs what it chose (no thresholds of its own)
    commands = {line.split("python bin/")[1].split()[0]: line for line in result.stderr.splitlines()
                if "Would run: python bin/" in line}
    mining, choosing, predicting = (commands[name] for name in ("find_hard_negatives.py", "validate_test.py",
                                                                "script_5_predict.py"))
    assert "--fusion network" in mining and "--seg-threshold 0.4" in mining
    assert "--compare-fusion" in choosing and "--seg-threshold 0.4" in choosing
    assert "--fusion auto" in predicting and "--seg-threshold" not in predicting
    assert not (tmp_path / "models").exists()
    assert len(list((tmp_path / "logs").glob("full_pipeline_*.log"))) == 1


def test_a_dry_run_without_any_data_still_prints_the_plan_and_what_each_phase_lacks(tmp_path):
    result = run_script("full_pipeline.py", "--dry-run", "--data-dir", tmp_path / "data", "--models-dir",
                        tmp_path / "models", "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Would run: python bin/script_1_train_v3.py" in result.stderr
    assert f"would stop: no training images under {tmp_path / 'data' / 'train_images'}" in result.stderr
    assert not (tmp_path / "models").exists()


def test_training_flags_reach_the_training_scripts_spelled_out(tmp_path):
    make_layout(tmp_path / "data")
    result = run_script("full_pipeline.py", "--dry-run", "--phase", "1", "--epochs", "2", "--img-size", "96",
                        "--data-dir", tmp_path / "data", "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trains = [line for line in result.stderr.splitlines() if "Would run: python bin/script_1_train_v3.py" in line]
    assert len(trains) == 1 and "--epochs 2" in trains[0] and "--img-size 96" in trains[0]
    # no abbreviations: argparse would take --encoder for --encoder-weights, the pipeline's only --encoder* flag
    abbreviated = run_script("full_pipeline.py", "--dry-run", "--encoder", "resnet18", cwd=tmp_path)
    assert abbreviated.returncode == 2 and "unrecognized arguments: --encoder resnet18" in abbreviated.stderr


def test_bad_flags_and_missing_data_are_clear_errors(tmp_path):
    bad = run_script("full_pipeline.py", "--phase", "7", "--logs-dir", tmp_path / "logs", cwd=tmp_path)
    assert bad.returncode == 1 and "phases are 0, 1, 2, 3, 4" in bad.stderr and "Traceback" not in bad.stderr
    for folder in ("train_images", "test_images"):        # a fresh clone: the folders, empty
        (tmp_path / "nothing" / folder).mkdir(parents=True)
    empty = run_script("full_pipeline.py", "--data-dir", tmp_path / "nothing", "--logs-dir", tmp_path / "logs",
                       cwd=tmp_path)
    assert empty.returncode == 1 and "kaggle competitions download" in empty.stderr
    assert "--demo" in empty.stderr and "Traceback" not in empty.stderr


@pytest.mark.slow
def test_demo_makes_missing_demo_data_then_plans_on_it(tmp_path, monkeypatch):
    data = tmp_path / "demo"
    # the demo's own generator, at a sixth of its size: the matcher's child process has 4 images to read
    monkeypatch.setattr(demo, "make_demo_dataset", functools.partial(demo.make_demo_dataset, n_forged=6, n_test=4,
                                                                       n_supplemental=1, max_size=320))
    result = run_script("full_pipeline.py", "--demo", "--inference-only", "--fusion", "matcher",
                        "--data-dir", data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "making the demo data" in result.stdout and (data / "solution.csv").is_file()
    assert (data / "submission.csv").is_file() and "demo score" in result.stdout
    assert list((data / "logs").glob("full_pipeline_*.log"))            # logs stay under the demo folder


class Interrupting(Fake):
    """A step during which the user presses Ctrl-C: it sends SIGINT to the pipeline (its parent),
    which must pass it on; the step then says its last words and ends."""

    def command(self) -> list[str]:
        code = ("import os, signal, sys, time\n"
                "signal.signal(signal.SIGINT, signal.default_int_handler)\n"   # even if inherited as ignored
                "print('working', flush=True)\n"
                "os.kill(os.getppid(), signal.SIGINT)\n"
                "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n"
                "    print('interrupted; run it with --resume', flush=True)\n    sys.exit(130)\n")
        return [sys.executable, "-c", code]


def test_ctrl_c_stops_the_step_and_the_run_and_says_what_finished(tmp_path, monkeypatch):
    import lib.tools.pipeline
    monkeypatch.setattr(lib.tools.pipeline, "STEP_GRACE", 0.5)    # the step here gets SIGINT only passed on
    log_file = setup_logging("full_pipeline", tmp_path)
    started = time.perf_counter()
    # Ctrl-C raises KeyboardInterrupt here too where the suite runs with SIGINT ignored (in the background)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        results, failed = execute({1: [Fake("first")], 2: [Interrupting("second")], 3: [Fake("never")]},
                                  stop_on_failure=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 20                  # the step did not sleep its 30 s out
    assert failed and [(r.phase, r.status) for r in results] == [(1, "ok"), (2, "interrupted")]
    assert results[1].note == "during fake_second.py"
    text = log_file.read_text()
    assert "--- step 1 of 3 (0m00s so far): first" in text
    assert re.search(r"--- step 2 of 3 \(0m0\ds so far, about 0m0\ds left\): second", text)
    assert "    interrupted; run it with --resume" in text     # the step's last words reach the log
    assert "hello from never" not in text


def test_the_command_that_goes_on_keeps_the_flags_and_names_the_phases_left():
    assert continue_command(["--demo", "--phase", "1", "--epochs", "2"], [1, 2, 3, 4]) == \
        "python bin/full_pipeline.py --demo --epochs 2 --phase 1,2,3,4"
    assert continue_command(["--skip-initial", "--data-dir", "d", "--phase=3"], [3, 4]) == \
        "python bin/full_pipeline.py --data-dir d --phase 3,4 --overwrite"


def test_the_step_clock_estimates_from_the_steps_done(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    clock = StepClock([2, 1, 1])
    assert clock.start(2) == "1 of 3 (0m00s so far)"
    now[0] = 120.0                                              # 2 units of weight took 2 minutes
    clock.finish()
    assert clock.start(1) == "2 of 3 (2m00s so far, about 2m00s left)"


def test_without_bars_a_long_loop_logs_its_progress_and_a_short_one_stays_silent(monkeypatch, caplog):
    import lib.progress
    monkeypatch.setattr(lib.progress, "LOG_EVERY", 0.3)
    with caplog.at_level(logging.INFO, logger="progress"):
        for _ in lib.progress.progress_bar(range(3), desc="short", unit="img", progress=False):
            pass
        assert caplog.records == []
        for i in lib.progress.progress_bar(range(8), desc="match", unit="img", progress=False):
            time.sleep(1.2 if i == 4 else 0.1)              # a stall: still no more than a line per 0.3 s
    lines = [r.getMessage() for r in caplog.records]
    times = [r.created for r in caplog.records]
    assert all(b - a > 0.25 for a, b in zip(times, times[1:-1]))     # the last: the closing count
    assert lines and all(re.fullmatch(r"match: \d/8 img \(00:0\d elapsed, about 00:0\d left\)", line) for line in lines)
    assert lines[-1].startswith("match: 8/8 img") and len(lines) == len(set(lines))
