"""Hooks for the schema fuzzer's command-line run against a live API (tests/schemathesis.toml
names this module): the same description rules as the pytest run (tests/support/
schema_rules.py), so that `st run` reports what the pytest run would.

The built-in positive-data and use-after-free checks are turned off in the configuration
and replaced here by the same checks where they apply: not to a request whose refusal
rests on a rule JSON Schema cannot state (rules between fields, stored state,
server-issued cursors), nor to reading what a DELETE asked to end, which stays readable
as in Titus (`STAYS_READABLE`)."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import checks

from tests.support.schema_rules import (
    excluded,
    mend_descriptor,
    once_per_variation,
    register_formats,
    remember_taken_key,
)

register_formats()
schemathesis.hook("map_body")(mend_descriptor)
schemathesis.hook("after_call")(remember_taken_key)
schemathesis.hook("filter_case")(once_per_variation)


def _where_it_applies(check: Any) -> Any:
    """`check`, registered under `<name>_where_it_applies`, skipping the cases `excluded`
    names it for."""

    def applied(
        ctx: checks.CheckContext, response: schemathesis.Response, case: schemathesis.Case
    ) -> bool | None:
        if check in excluded(case):
            return None
        return check(ctx, response, case)

    applied.__name__ = applied.__qualname__ = f"{check.__name__}_where_it_applies"
    return schemathesis.check(applied)


#: Schema-valid data is accepted, unless a rule the description cannot state refuses it.
positive_data_acceptance_where_it_applies = _where_it_applies(checks.positive_data_acceptance)
#: A resource a DELETE removed answers 404, unless it stays readable (a kill).
use_after_free_where_it_applies = _where_it_applies(checks.use_after_free)
