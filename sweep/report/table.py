"""The one markdown table every document of the report package writes."""

from __future__ import annotations


def _cell(value: object, escape_pipes: bool) -> str:
    text = str(value)
    return text.replace("|", "\\|") if escape_pipes else text


def markdown_table(
    header: list[str], rows: list[list[str]], escape_pipes: bool = True
) -> list[str]:
    """The lines of a markdown table, every column left as markdown's default (``---``).
    ``escape_pipes``: a ``|`` inside a cell is written ``\\|`` so it cannot end the cell
    (the study document's cells never hold one and are written as they are)."""
    out = ["| " + " | ".join(_cell(c, escape_pipes) for c in header) + " |"]
    out.append("|" + "---|" * len(header))
    out += ["| " + " | ".join(_cell(c, escape_pipes) for c in row) + " |" for row in rows]
    return out
