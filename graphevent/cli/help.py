"""Option tables of ``--help`` that read whole at 80 columns.

typer lays options out in six columns (long, short, negative long, negative short, type,
help); at 80 columns the help column shrank to a few characters and rich broke words in two
(``checkpoints/last. pt``, ``--no-freeze-enco der``). Here each option is one cell of names
that never wraps (``--freeze-encoder`` with ``--no-freeze-encoder`` under it), a value type
only where the option takes a value (``<int>``, ``<path>``; no ``<bool>``, a list shows its
element type), and the rest of the width for the help text.
"""

from __future__ import annotations

import re
from typing import Any


def value_type(param: Any, ctx: Any) -> str:
    """``<int>``, ``<path>`` ...; ``""`` for a flag (``<bool>``); ``<list[Path]>`` -> ``<path>``."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    shown = param.display_type_rich(ctx=ctx) or ""
    if shown.strip("<>").lower() == "bool":
        return ""
    listed = re.fullmatch(r"<list\[(\w+)\]>", shown)
    return f"<{listed.group(1).lower()}>" if listed else shown


def install() -> None:
    """Replace typer's option panel with :func:`_print_options_panel` (a typer without
    that private function keeps its own layout)."""
    import typer.rich_utils as rich_utils

    if callable(getattr(rich_utils, "_print_options_panel", None)):
        rich_utils._print_options_panel = _print_options_panel


def _print_options_panel(*, name: str, params: list, ctx: Any, markup_mode: Any, console: Any) -> None:
    """typer's ``_print_options_panel`` in three columns: names, value type, help."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    import typer.rich_utils as ru

    if not params:
        return
    table = Table(show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    table.add_column("names", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("help", ratio=1, overflow="fold")
    indent = "  " if any(p.required and getattr(p, "param_type_name", "") != "argument" for p in params) else ""
    for param in params:
        names = Text(no_wrap=True)
        if getattr(param, "param_type_name", "") == "argument":
            names.append(f"{param.make_metavar(ctx) if hasattr(param, 'make_metavar') else param.name}", style=ru.STYLE_OPTION)
        else:
            if param.required:
                names.append(ru.REQUIRED_SHORT_STRING + " ", style=ru.STYLE_REQUIRED_SHORT)
            else:
                names.append(indent)
            names.append(", ".join([*(o for o in param.opts if o.startswith("--")), *(o for o in param.opts if not o.startswith("--"))]),
                         style=ru.STYLE_OPTION)
            negative = ", ".join(param.secondary_opts)
            if negative:
                names.append("\n" + indent + negative, style=ru.STYLE_NEGATIVE_OPTION)
        shown = value_type(param, ctx) if getattr(param, "param_type_name", "") != "argument" else ""
        ranged = param._get_number_range_help_str() if shown and hasattr(param, "_get_number_range_help_str") else None
        if ranged:  # <int range> [x>=1] -> <int ≥1>
            shown = f"<{shown.strip('<>').removesuffix(' range')} {ranged.replace('x', '').replace('>=', '≥').replace('<=', '≤')}>"
        kind = Text(shown, style=ru.STYLE_TYPES)
        table.add_row(names, kind, ru._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode))
    console.print(Panel(table, border_style=ru.STYLE_OPTIONS_PANEL_BORDER, title=name, title_align=ru.ALIGN_OPTIONS_PANEL))
