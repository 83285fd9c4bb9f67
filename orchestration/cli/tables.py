"""Print CLI tables so their values stay whole.

rich cuts cells to fit the terminal ("ge_premie…"), and to a pipe it assumes 80 columns, so `cmr synth
--list-scanners | cat` lost the style names. On a terminal every column now folds (a long value continues on the
next line, nothing is dropped); to a pipe or file the table is plain aligned text, one row per line, at whatever
width the values need, so grep and cut see each value whole.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def plain_lines(table: Table) -> list[str]:
    """The table as aligned plain-text lines: a header line, then one line per row (columns two spaces apart)."""
    columns = [[_plain(c.header), *(_plain(v) for v in c.cells)] for c in table.columns]
    if not columns:
        return []
    widths = [max(len(v) for v in col) for col in columns]
    lines = []
    for r in range(len(columns[0])):
        lines.append("  ".join(col[r].ljust(w) for col, w in zip(columns, widths)).rstrip())
    title = _plain(table.title) if table.title else ""
    return ([title] if title else []) + lines


def print_table(table: Table, console: Console | None = None) -> None:
    """Print `table` on `console` (default: stdout) with every value whole (see the module docstring)."""
    console = console or Console()
    if not console.is_terminal:
        for line in plain_lines(table):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    console.print(table)


__all__ = ["plain_lines", "print_table"]
