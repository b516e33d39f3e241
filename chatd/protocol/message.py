"""IRC message parsing and formatting (modern.ircdocs.horse, IRCv3 message-tags).

A message on the wire is ``[@tags ][:source ]COMMAND[ params...][ :trailing]``.
``parse`` never raises on odd input from a client: a line that has no command
yields a ``Message`` whose command is the empty string, and callers ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPES = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed IRC line. ``command`` is upper-cased; numerics stay digits."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def param(self, index: int, default: str = "") -> str:
        """The parameter at ``index``, or ``default`` when the client sent fewer."""
        return self.params[index] if index < len(self.params) else default


def _unescape_tag_value(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        # An unknown escape drops the backslash; a trailing backslash is dropped (IRCv3).
        out.append(_TAG_UNESCAPES.get(escaped, escaped))
    return "".join(out)


def _parse_tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        tags[key] = _unescape_tag_value(value)
    return tags


def parse(line: str) -> Message:
    """Parse one line (without its terminator) into a ``Message``."""
    rest = line.lstrip(" ")
    tags: dict[str, str] = {}
    source: str | None = None
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = _parse_tags(raw_tags)
        rest = rest.lstrip(" ")
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = [word for word in rest.split(" ") if word]
    if not words:
        return Message("", (), source, tags)
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Message(words[0].upper(), tuple(params), source, tags)


def format_tags(tags: dict[str, str]) -> str:
    """The ``@...`` tag section without the leading ``@`` or trailing space."""
    return ";".join(f"{key}={value.translate(_TAG_ESCAPES)}" if value else key for key, value in tags.items())


def format_message(
    command: str,
    *params: str,
    source: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Build one line without its terminator.

    The last parameter is written as a trailing parameter when it must be (empty,
    contains a space, starts with ``:``). Raises ``ValueError`` for a middle
    parameter that cannot be represented, or any parameter holding CR, LF or NUL,
    because such a line would let text inject a second command.
    """
    parts: list[str] = []
    if tags:
        parts.append("@" + format_tags(tags))
    if source:
        parts.append(":" + source)
    parts.append(command)
    last = len(params) - 1
    for index, param in enumerate(params):
        if "\r" in param or "\n" in param or "\0" in param:
            raise ValueError(f"parameter contains a line break or NUL: {param!r}")
        if index == last and (not param or " " in param or param.startswith(":")):
            parts.append(":" + param)
        elif not param or " " in param or param.startswith(":"):
            raise ValueError(f"middle parameter cannot be empty, hold a space or start with ':': {param!r}")
        else:
            parts.append(param)
    return " ".join(parts)
