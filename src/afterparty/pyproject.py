"""The ``[tool.afterparty]`` table of a pyproject.toml as most projects write it, read without
``tomllib``: importing tomllib (and the typing module it needs) costs a no-op deploy more
than the rest of its work. Anything this reader does not fully understand is left to tomllib.
"""

import functools
import re


@functools.cache
def _plain_pair() -> re.Pattern[str]:
    """A ``key = value`` line of the table: a bare key, and a basic string without escapes, a
    literal string or a boolean; a comment may follow (compiled only for a table with keys)."""
    return re.compile(
        r"""([A-Za-z0-9_-]+) \s*=\s* (?: "([^"\\\x00-\x08\x0a-\x1f\x7f]*)"
            | '([^'\x00-\x08\x0a-\x1f\x7f]*)' | (true|false) ) \s* (?:\#.*)?""", re.X)


def _is_the_header(line: str) -> bool:
    """``[tool.afterparty]``, with any blanks around its parts and a comment after it."""
    return "".join(line.split()).partition("#")[0] == "[tool.afterparty]"


def plain_table(content: bytes) -> dict[str, object] | None:
    """The ``[tool.afterparty]`` table of a pyproject.toml's ``content`` (empty when there is
    none), when every line of it is a plain ``key = value`` and nothing else in the file may
    add to it; None when
    only a TOML parser can tell (multi-line strings, arrays, inline tables, sub-tables, dotted
    or quoted keys naming afterparty, a key given twice).

    What it answers is what tomllib would, for a valid file; it does not check the rest of the
    file (every other command does, with tomllib).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"""' in text or "'''" in text:
        return None
    table: dict[str, object] = {}
    inside = seen = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            inside = _is_the_header(stripped)
            if (inside and seen) or (not inside and "afterparty" in stripped):
                return None
            seen = seen or inside
        elif inside:
            if not stripped or stripped.startswith("#"):
                continue
            pair = _plain_pair().fullmatch(stripped)
            if pair is None or pair[1] in table:
                return None
            key, basic, literal, boolean = pair.groups()
            table[key] = boolean == "true" if boolean else basic if basic is not None else literal
        elif "afterparty" in line and _may_add_to_the_table(line):
            return None
    return table


def _may_add_to_the_table(line: str) -> bool:
    """Outside the table: an inline table, or a key (``tool.afterparty.x = ``, ``afterparty =``
    under ``[tool]``) that names afterparty; a value that does (a dependency) adds nothing."""
    key, equals, _ = line.partition("=")
    return "{" in line or (bool(equals) and "afterparty" in key)
