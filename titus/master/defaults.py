"""Defaults of the master's knobs, read from `titus.settings.Settings`, where each is
defined once: the master's config dataclasses take them from there instead of writing
the values again."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from titus.settings import Settings


def setting_default(name: str) -> Any:
    """The default `Settings` gives its field `name`."""
    return Settings.model_fields[name].default


def from_setting(name: str) -> Any:
    """A dataclass field whose default is the setting `name`'s."""
    return field(default=setting_default(name))
