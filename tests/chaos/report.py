"""The table the suite prints: one row per scenario run, counted breaches per invariant."""

from __future__ import annotations

from tests.chaos.invariants import Outcome

#: Outcomes of this session's scenarios, in the order they ran (printed at the end).
RESULTS: list[Outcome] = []

COLUMNS = (
    "scenario",
    "faults",
    "jobs",
    "refused",
    "lost",
    "duplicated",
    "not converged",
    "leaked",
    "fired early",
    "time to converge",
    "elections",
)


def row(o: Outcome) -> tuple[str, ...]:
    took = "-" if o.converge_sec is None else f"{o.converge_sec:.1f} s"
    counts = (
        o.faults,
        o.jobs,
        o.refused,
        o.lost,
        o.duplicated,
        o.not_converged,
        o.leaked,
        o.early,
    )
    return (o.scenario, *(str(n) for n in counts), took, str(o.elections))


def table(outcomes: list[Outcome]) -> str:
    rows = [COLUMNS, *(row(o) for o in outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
