"""What every bin/ script shares: logging to console and logs/, and one-line errors.

A script builds its parser, then calls `run(main)`: a ProjectError (bad input, missing
file) or an OSError (a full disk, a permission) becomes `error: <message>` on stderr and exit
code 1, never a traceback.
"""
from __future__ import annotations

import argparse
import difflib
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import ProjectError, first_line

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _Formatter(logging.Formatter):
    """The project's format; a record logged with extra={"raw": True} (a child process's line,
    already formatted by the child) is written as it is."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage() if getattr(record, "raw", False) else super().format(record)


class _LogFile(logging.FileHandler):
    """The run's log file. A write that fails (a full disk, a quota) is one warning on the console,
    after which the file is left alone: logging's default is a traceback for every record."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or first_line(error) if error else "unknown error"
        sys.stderr.write(f"warning: {self.baseFilename}: the log file cannot be written ({reason}); "
                         f"logging to the console only\n")


def make_parser(description: str | None) -> argparse.ArgumentParser:
    """A script's parser: its docstring as the description, kept as written, and no abbreviated
    flags (argparse would take `--encoder` for `--encoder-weights` where a script has only the
    second; a flag is spelled out or refused)."""
    return ScriptParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                        allow_abbrev=False)


class ScriptParser(argparse.ArgumentParser):
    """argparse's parser, saying of a required flag that has an old spelling (lib.flags.add_renamed:
    a required group of one visible flag) what it says of any required flag."""

    def error(self, message: str):
        """One line, not the whole usage: the problem, the flag probably meant, where the flags are
        listed (exit code 2, as argparse)."""
        one = re.fullmatch(r"one of the arguments (\S+) is required", message)
        if one:
            message = f"the following arguments are required: {one.group(1)}"
        unknown = re.fullmatch(r"unrecognized arguments: (.*)", message)
        if unknown:
            known = [option for action in self._actions for option in action.option_strings]
            guesses = []
            for token in unknown.group(1).split():
                if token.startswith("-"):
                    close = difflib.get_close_matches(token.split("=", 1)[0], known, n=1, cutoff=0.6)
                    guesses += [f"{token}: did you mean {close[0]}?"] if close else []
            message += f" ({'; '.join(guesses)})" if guesses else ""
        self.exit(2, f"{self.prog}: error: {message} (--help lists the flags)\n")


def setup_logging(name: str, logs_dir: Path | None = None, level: int = logging.INFO) -> Path | None:
    """Log to the console and, with `logs_dir`, to `<logs_dir>/<name>_<timestamp>.log`.

    Returns the log file's path (None without `logs_dir`, and on torchrun ranks other than 0,
    which log warnings to the console only). Calling it again replaces
    the handlers, so tests and repeated calls do not duplicate lines.
    """
    if int(os.environ.get("RANK", "0")) > 0:      # torchrun: rank 0 alone writes the log
        logs_dir, level = None, logging.WARNING
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = _Formatter(LOG_FORMAT, DATE_FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    root.addHandler(console)
    root.setLevel(level)
    log_file = None
    if logs_dir is not None:
        logs_dir = Path(logs_dir)
        logs_dir.mkdir(parents=True, exist_ok=True)
        log_file = _new_log_file(logs_dir, name)
        file_handler = _LogFile(log_file, encoding="utf-8")
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    return log_file


def _new_log_file(logs_dir: Path, name: str) -> Path:
    """`<name>_<timestamp>.log`, created here; a run started in the same second as another gets
    `_<pid>` added, and a second run of one process in that second `_<pid>_<k>`, so that two
    runs never write into one file."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    first = [logs_dir / f"{name}_{stamp}.log", logs_dir / f"{name}_{stamp}_{os.getpid()}.log"]
    more = (logs_dir / f"{name}_{stamp}_{os.getpid()}_{k}.log" for k in itertools.count(2))
    for candidate in itertools.chain(first, more):
        try:
            with open(candidate, "x", encoding="utf-8"):
                return candidate
        except FileExistsError:
            continue


def one_line(exc: BaseException) -> str:
    """The message of a project error; one re-raised by a DataLoader worker carries the worker's
    traceback, of which only the last line (the original message) is kept."""
    message = str(exc)
    if "Original Traceback" in message:
        message = re.sub(r"^[\w.]+(Error|Exception): ", "", message.strip().splitlines()[-1])
    return message


RESUME_HINT = ("the finished epochs are saved: to go on from the last one, run the same command with --resume "
               "(--overwrite starts anew)")


def run(main: Callable[[], int | None], on_interrupt: str = "") -> None:
    """Run a script's main(); exit with its return code, or 1 with a one-line error. Ctrl-C ends
    it with 'interrupted' and `on_interrupt` (how to go on), exit code 130."""
    try:
        code = main()
    except ProjectError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:     # the system said no (disk full, permissions, a vanished file): its words, one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or first_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"interrupted{'; ' + on_interrupt if on_interrupt else ''}", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
