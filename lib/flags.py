"""Command-line flags declared once, on the option dataclasses' fields.

A field declared with `flag(...)` says how it appears on a command line; from that one
declaration come the argparse arguments (`add_args`), the dataclass from parsed arguments
(`from_args`) and the command line that reproduces a value (`to_argv`, what the full pipeline
passes to the scripts it runs). The argparse destination of a flag is its field's name, so a
parsed namespace, a dataclass and a JSON record of either use the same keys.

    @dataclass(frozen=True)
    class PostConfig:
        seg_threshold: float = flag(0.35, "--seg-threshold", "base pixel threshold")
        adaptive: bool = flag(True, "--no-adaptive", "no brightness-adaptive threshold")

A bool field is switched off by a flag spelled `--no-...` (its field defaults to True) and on by
any other (its field defaults to False). Old spellings (`aliases`) are still accepted for one
release, hidden from --help, with a warning naming the new one. Stdlib only: every script imports this before parsing.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

FLAG = "flag"      # the field-metadata key


@dataclass(frozen=True)
class Flag:
    """How one dataclass field appears on the command line."""

    name: str                              # "--seg-threshold"
    help: str
    type: Callable[[str], Any] | None = None   # default: the type of the field's default (str when None)
    choices: tuple | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()          # old spellings: accepted, hidden, warned about
    append: bool = False                   # repeatable; the values are collected in a list (default None)
    show_default: bool = True              # append "(default X)" to the help


def flag(default: Any = MISSING, name: str | Flag = "", help: str = "", *, default_factory: Any = MISSING,
         **options) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring); `name` may be
    a Flag declared once and shared by several option sets."""
    spec = dataclasses.replace(name, **options) if isinstance(name, Flag) else Flag(name, help, **options)
    meta = {FLAG: spec}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flagged(cls_or_obj) -> list[tuple[dataclasses.Field, Flag]]:
    """The fields of a dataclass that are flags, in declaration order."""
    return [(f, f.metadata[FLAG]) for f in dataclasses.fields(cls_or_obj) if FLAG in f.metadata]


def _default(field: dataclasses.Field) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise TypeError(f"flag field {field.name} needs a default")


class _OldSpelling(argparse.Action):
    """A flag's old spelling: does what the new one does and says so on stderr. With `nargs` "+"
    for a repeatable new flag, each value counts as one use of it (`--models a b` = `--model a --model b`)."""

    def __init__(self, option_strings, dest, new: argparse.Action, nargs=None, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=new.nargs if nargs is None else nargs,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now {self.new.option_strings[0]}; the old spelling goes in the next "
              "release", file=sys.stderr)
        for value in values if self.nargs == "+" and self.new.nargs is None else [values]:
            if self.new.choices is not None and value not in self.new.choices:
                parser.error(f"argument {option_string}: invalid choice: {value!r}")
            self.new(parser, namespace, value, self.new.option_strings[0])


def old_spelling(group, alias: str, new: argparse.Action, nargs=None) -> argparse.Action:
    """Accept `alias`, an earlier spelling of the flag `new`, hidden from --help and warned about."""
    return group.add_argument(alias, dest=new.dest, action=_OldSpelling, new=new, nargs=nargs)


def add_renamed(group, old: str, *names: str, old_nargs=None, **kwargs) -> argparse.Action:
    """`group.add_argument(*names, **kwargs)` for a flag once spelled `old` (still accepted). A
    required flag is satisfied by either spelling: argparse counts a required flag as given only
    when its own action ran, so both go in a required mutually exclusive group."""
    if kwargs.pop("required", False):
        group = group.add_mutually_exclusive_group(required=True)
    action = group.add_argument(*names, **kwargs)
    old_spelling(group, old, action, old_nargs)
    return action


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> set[str]:
    """The destinations of the flags that the command line `argv` (default: sys.argv[1:]) spells
    out, in any spelling, as `--flag value` or `--flag=value`: what the user chose, as opposed to
    defaults. Exact because the scripts' parsers take no abbreviations (lib.cli.make_parser)."""
    tokens = list(sys.argv[1:] if argv is None else argv)
    tokens = tokens[:tokens.index("--")] if "--" in tokens else tokens
    spelled = {token.split("=", 1)[0] for token in tokens if token.startswith("--")}
    return {action.dest for action in parser._actions if spelled & set(action.option_strings)}


def add_flag(group, dest: str, spec: Flag, default: Any) -> argparse.Action:
    """One flag (and its hidden old spellings) added to an argparse parser or group."""
    help_text = spec.help
    shown = not (default is None or isinstance(default, bool) or default in ([], ()))
    if spec.show_default and shown and "(default" not in help_text:
        help_text += f" (default {default})"
    if isinstance(default, bool) and not spec.append:
        switch = "store_false" if spec.name.startswith("--no-") else "store_true"
        action = group.add_argument(spec.name, dest=dest, action=switch,
                                    default=default, help=help_text)
    else:
        kind = spec.type or (type(default) if default is not None else str)
        action = group.add_argument(spec.name, dest=dest, type=kind, choices=spec.choices, metavar=spec.metavar,
                                    action="append" if spec.append else "store", default=default, help=help_text)
    for alias in spec.aliases:
        old_spelling(group, alias, action)
    return action


def add_args(cls, parser, title: str | None = None, only: Iterable[str] | None = None,
             defaults: dict | None = None):
    """Add `cls`'s flags to `parser` (in an argument group `title` when given); `only` limits them
    to these field names, `defaults` overrides field defaults. Returns the group (or parser)."""
    group = parser.add_argument_group(title) if title else parser
    wanted = None if only is None else set(only)
    for field, spec in flagged(cls):
        if wanted is None or field.name in wanted:
            add_flag(group, field.name, spec, (defaults or {}).get(field.name, _default(field)))
    return group


def from_args(cls, args: argparse.Namespace, **overrides):
    """An instance of `cls` from parsed arguments: every flag field the namespace has, then
    `overrides`; fields absent from both keep their defaults."""
    values = {f.name: getattr(args, f.name) for f, _ in flagged(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def to_argv(obj, only: Sequence[str] | None = None) -> list[str]:
    """The command-line flags that give `obj`'s values where they differ from the field defaults
    (limited to the field names `only`): what a script must be passed to rebuild `obj`."""
    argv = []
    for field, spec in flagged(obj):
        if only is not None and field.name not in only:
            continue
        value, default = getattr(obj, field.name), _default(field)
        if value == default:
            continue
        if isinstance(default, bool) and not spec.append:
            argv.append(spec.name)
        elif spec.append:
            for item in value or []:
                argv += [spec.name, str(item)]
        elif value is not None:
            argv += [spec.name, str(value)]
    return argv


def record(obj) -> dict:
    """The flag fields of `obj` as a JSON-ready dict keyed by their argparse destinations."""
    return {f.name: getattr(obj, f.name) for f, _ in flagged(obj)}
