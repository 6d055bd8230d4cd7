"""Text from records, references, protocol files and plug-in metadata, made safe for the medium that shows it.

Results directories are shared and records travel between people, so a variant name, a source or a note may contain
anything: rich markup (``[bold]``, or a run label such as ``axonal[gsc-mini,torch,seed=0]`` that rich would take for a
tag and drop), Markdown (``![x](javascript:...)``, ``|`` that splits a table cell, backticks), HTML, newlines, or
terminal control sequences (ESC, which rich passes through unchanged). Every string that did not come from our own
code goes through one of these functions before it is rendered; the HTML leaderboard has its own escaping.
"""

from __future__ import annotations

import re
import unicodedata

# ASCII punctuation that starts inline Markdown (emphasis, code, links, images, raw HTML, table cells, strikethrough,
# entities); CommonMark reads a backslash before any ASCII punctuation as that character, literally.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>!|~&])")


def one_line(value: object) -> str:
    """``str(value)`` on one line: newlines and tabs become spaces, other control and format characters (ESC, bidi
    overrides) become visible ``\\xNN`` / ``\\uNNNN`` escapes, so nothing can move the cursor or recolour a terminal."""
    out = []
    for char in str(value):
        if char in "\n\r\t\v\f":
            out.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def terminal(value: object) -> str:
    """For rich: one line, with markup escaped so ``[...]`` shows as written."""
    from rich.markup import escape

    return escape(one_line(value))


def markdown(value: object) -> str:
    """For a Markdown table cell or heading: one line, inline syntax backslash-escaped so it shows as text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(value))

