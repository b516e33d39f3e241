"""Fitting styled text into terminal columns: message lines wrapped at words, the status line shortened.

prompt_toolkit's own wrapping cuts at the last column, inside words and under the
timestamp; weechat and irssi wrap at spaces and indent the continuation under the
message column, so the eye can follow a long line. Widths are terminal cells
(``get_cwidth``), so wide characters (CJK, emoji) count as two.
"""

from __future__ import annotations

import re
from typing import Final

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.utils import get_cwidth

_TOKEN_RE: Final = re.compile(r" +|[^ ]+")


def cells(fragments: StyleAndTextTuples) -> int:
    return sum(get_cwidth(fragment[1]) for fragment in fragments)


def _cut(text: str, room: int) -> tuple[str, str]:
    """The longest head of ``text`` that fits ``room`` cells (at least one character), and the rest."""
    used = 0
    for index, char in enumerate(text):
        used += get_cwidth(char)
        if used > room:
            return (text[:index], text[index:]) if index else (text[:1], text[1:])
    return text, ""


def wrap_fragments(fragments: StyleAndTextTuples, width: int, indent: int) -> list[StyleAndTextTuples]:
    """``fragments`` as rows of at most ``width`` cells, broken at spaces; rows after the first start with
    ``indent`` spaces (the hanging indent). A word longer than a row is cut, as it cannot be broken elsewhere.
    The spaces at a break are dropped. Always returns at least one row."""
    width = max(1, width)
    indent = max(0, min(indent, width // 2))
    rows: list[StyleAndTextTuples] = [[]]
    column = 0

    def new_row() -> None:
        nonlocal column
        while rows[-1] and not rows[-1][-1][1].strip(" "):
            rows[-1].pop()  # spaces before a break would only pad the row
        rows.append([("", " " * indent)] if indent else [])
        column = indent

    for fragment in fragments:
        style, text = fragment[0], fragment[1]
        for line_index, line in enumerate(text.split("\n")):
            if line_index:
                new_row()  # a newline in the text itself (none reach here from the network) starts a row
            for token in _TOKEN_RE.findall(line):
                size = get_cwidth(token)
                if token[0] == " ":
                    if column + size <= width:
                        rows[-1].append((style, token))
                        column += size
                    elif column > indent:
                        new_row()  # the break eats the spaces
                    continue
                if column + size > width and column > indent:
                    new_row()
                while column + size > width:
                    head, token = _cut(token, width - column)
                    if column >= width or not head:
                        new_row()
                        continue
                    rows[-1].append((style, head))
                    new_row()
                    size = get_cwidth(token)
                if token:
                    rows[-1].append((style, token))
                    column += size
    return rows


def fit_parts(parts: list[tuple[int, StyleAndTextTuples]], width: int) -> StyleAndTextTuples:
    """Join whole ``parts`` (kept in their order) into at most ``width`` cells, dropping the least important
    first: each part has a rank, higher ranks go first. A part is never cut, so no word is either."""
    kept = list(range(len(parts)))
    while len(kept) > 1 and sum(cells(parts[index][1]) for index in kept) > width:
        kept.remove(max(kept, key=lambda index: (parts[index][0], index)))
    return [fragment for index in kept for fragment in parts[index][1]]
