"""Option values from three places (command line, ``CHATD_*`` environment, TOML file), checked alike.

A ``Kind`` turns what the user wrote into a value, or raises ``OptionValueError``
saying in words what the value is not (``'abc' is not a port number (0-65535)``).
It never says *where* the value came from: the caller knows that and puts it in
front (``--port``, ``CHATD_PORT``, ``chatd.toml: [server] port``), so the message
always names what the user actually typed, never an option they did not use.

Text (command line, environment) and TOML values go through the same checks; TOML
adds its types: a TOML integer for a number of seconds is fine, a float for a
count is not, and a boolean is only an on/off value (``port = true`` is an error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
FLAG_WORDS = "1/0, true/false, yes/no or on/off"


class OptionValueError(ValueError):
    """A value the option cannot take; the message starts with the value as written, no source."""


def shown(value: object) -> str:
    """A value the way the user wrote it: strings quoted, TOML booleans as TOML spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class Kind:
    """What one option accepts. ``parse`` takes the text form; ``toml_types`` are the TOML
    types taken as they are (still checked by ``check``); a TOML string always goes through
    ``parse``, so ``port = "6667"`` means what ``CHATD_PORT=6667`` means."""

    describe: str
    """What a good value is, after "is not": ``a port number (0-65535)``."""
    parse: Callable[[str], Any]
    toml_types: tuple[type, ...] = ()
    check: Callable[[Any], bool] = lambda _value: True
    convert: Callable[[Any], Any] = lambda value: value
    """Applied to an accepted TOML value of ``toml_types`` (an integer of seconds becomes a float)."""

    def from_text(self, text: str) -> Any:
        """The value of ``text``; raises OptionValueError naming ``text`` and what it should be."""
        try:
            value = self.parse(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not self.check(value):
            raise OptionValueError(f"{shown(text)} is not {self.describe}")
        return value

    def from_toml(self, value: object) -> Any:
        """The value of a TOML value; raises OptionValueError for a wrong type or a bad value."""
        if isinstance(value, str):
            return self.from_text(value)
        # bool is a subclass of int: `port = true` must not mean port 1.
        ok_type = isinstance(value, self.toml_types) and (bool in self.toml_types or not isinstance(value, bool))
        if not ok_type or not self.check(value):
            raise OptionValueError(f"{shown(value)} is not {self.describe}")
        return self.convert(value)

    def argparse_type(self) -> Callable[[str], Any]:
        """A converter for ``add_argument(type=...)`` whose error argparse prints as it stands."""
        import argparse

        def convert(text: str) -> Any:
            try:
                return self.from_text(text)
            except OptionValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None

        convert.__name__ = self.describe  # argparse names the type in a few messages
        return convert


def _flag(text: str) -> bool | None:
    word = text.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _int(text: str) -> int:
    return int(text.strip(), 10)


def _finite(text: str) -> float | None:
    value = float(text.strip())
    return value if math.isfinite(value) else None


FLAG = Kind(f"on or off (use {FLAG_WORDS})", _flag, (bool, int), lambda value: value in (0, 1), bool)
"""An on/off option: TOML booleans, and in TOML too the integers 1/0 and the words as strings."""

TEXT = Kind("text (in TOML, write it in quotes)", str)
PORT = Kind("a port number (0-65535)", _int, (int,), lambda value: 0 <= value <= 65535)
POSITIVE_INT = Kind("a whole number greater than 0", _int, (int,), lambda value: value > 0)
COUNT = Kind("a whole number, 0 or more", _int, (int,), lambda value: value >= 0)
POSITIVE_SECONDS = Kind("a number of seconds greater than 0", _finite, (int, float), lambda value: value > 0, float)
SECONDS = Kind("a number of seconds, 0 or more", _finite, (int, float), lambda value: value >= 0, float)
POSITIVE_NUMBER = Kind("a number greater than 0", _finite, (int, float), lambda value: value > 0, float)
NUMBER = Kind("a number, 0 or more", _finite, (int, float), lambda value: value >= 0, float)


def choice(names: Sequence[str]) -> Kind:
    """One of ``names``, exactly as spelled (backends and log levels are lower case)."""
    allowed = tuple(names)
    return Kind(f"one of {', '.join(allowed)}", lambda text: text if text in allowed else None)
