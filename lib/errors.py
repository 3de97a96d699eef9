"""The project's error types. Each message names the file (or row) and the problem in one line;
bin/ scripts print it and exit non-zero instead of showing a traceback (see lib.cli)."""


class ProjectError(Exception):
    """Base class of every error a user can cause with bad input or flags."""


class DataError(ProjectError):
    """An image or a mask that cannot be used: unreadable, wrong shape, wrong dtype."""


class RLEError(ProjectError, ValueError):
    """A malformed run-length encoding (the competition metric rejects it too)."""


class CheckpointError(ProjectError):
    """A checkpoint that is missing, corrupt, unsafe to load, or does not fit its model."""


class SubmissionError(ProjectError):
    """A submission or solution CSV that cannot be scored or uploaded."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def counted(count: int, noun: str) -> str:
    """'1 epoch', '3 epochs': a count with its noun in the number it needs."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def preview(text: object, limit: int = 60) -> str:
    """`text` for a one-line message: as it is, or its first `limit` characters and its length."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
