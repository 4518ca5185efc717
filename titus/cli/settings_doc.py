"""The configuration reference, generated from the settings object itself.

README's table is this output, and a test keeps the two equal, so a setting added to the
code cannot go undocumented.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from titus.settings import Settings


def _default(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} entries (see below)"
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if value == "" or value is None:
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def settings_table() -> str:
    """A Markdown table: environment variable, default, meaning."""
    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `TITUS_{name.upper()}` | `{_default(default)}` | {meaning} |")
    return "\n".join(lines)


BEGIN, END = "<!-- settings-table -->", "<!-- /settings-table -->"


def readme_section(text: str) -> str:
    """The table as it stands in a README between the settings-table markers."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def write_readme(path: Path) -> None:
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + settings_table() + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the configuration reference.")
    parser.add_argument("--readme", type=Path, help="rewrite the table in this README")
    args = parser.parse_args()
    if args.readme:
        write_readme(args.readme)
    else:
        print(settings_table())


if __name__ == "__main__":
    main()
