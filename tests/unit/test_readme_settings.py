"""README's configuration table lists every setting with its true default."""

from __future__ import annotations

from pathlib import Path

from titus.cli.settings_doc import readme_section, settings_table
from titus.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_setting_as_the_code_defines_it() -> None:
    # regenerate with: python -m titus.cli.settings_doc --readme README.md
    assert readme_section(README.read_text()) == settings_table()


def test_every_setting_says_what_it_means() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []
