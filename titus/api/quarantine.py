"""`/api/v3/quarantine`: the stored records nobody can read, and setting one aside.

A job or task document that does not parse is left out of every answer and every leader's
load (titus/store/quarantine.py). That keeps the platform up, but the record still sits in
the active state: a job whose task cannot be read is never reconciled, a job that cannot be
read holds its name. An operator repairs the record in the store, or sets it aside here:
the record (a job with its active tasks) moves to the archive exactly as stored, where it
is kept for the archive's retention, and the leader takes the job up again. Only a record
that truly cannot be read may be set aside this way; a readable one is killed, not hidden.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from titus.api.auth import OPEN, Principal
from titus.api.deps import authenticated, principal_of
from titus.api.errors import ApiError
from titus.api.policy import require_admin
from titus.api.schemas import ERROR_RESPONSES
from titus.model.job import Job, Task
from titus.store.quarantine import QUARANTINE
from titus.store.roles import Repair

log = logging.getLogger("titus.api")

_MODELS: dict[str, type[Job] | type[Task]] = {"job": Job, "task": Task}
#: How much of a set-aside record's text the answer and the log repeat.
SHOWN_CHARS = 2_000


class QuarantineService:
    def __init__(self, store: Repair):
        self.store = store

    def records(self) -> list[dict[str, object]]:
        return [r.to_json() for r in QUARANTINE.records()]

    def set_aside(self, kind: str, record_id: str, who: Principal = OPEN) -> dict[str, Any]:
        require_admin(who, "set a stored record aside")
        model = _MODELS.get(kind)
        if model is None:
            raise ApiError(400, f"kind must be job or task, not {kind[:40]!r}")
        raw = self.store.raw_record(kind, record_id)
        if raw is None:
            raise ApiError(404, f"no active {kind} {record_id} is stored")
        try:
            model.model_validate_json(raw)
        except (ValueError, RecursionError):
            pass
        else:
            raise ApiError(
                409,
                f"{kind} {record_id} reads fine: only a record that cannot be read is set "
                f"aside (kill the {kind} instead)",
            )
        moved = self.store.set_aside(kind, record_id)
        for ident in moved:
            QUARANTINE.set_aside("job" if ident == record_id and kind == "job" else "task", ident)
        log.warning(
            "%s %s set aside by %s (%d records moved to the archive as stored): %s",
            kind,
            record_id,
            who.name or "anonymous",
            len(moved),
            raw[:SHOWN_CHARS],
        )
        return {"kind": kind, "id": record_id, "setAside": moved, "value": raw[:SHOWN_CHARS]}


router = APIRouter(
    prefix="/api/v3/quarantine",
    tags=["operations"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


def _service(request: Request) -> QuarantineService:
    service: QuarantineService = request.app.state.quarantine
    return service


@router.get("")
async def quarantined(request: Request) -> dict[str, Any]:
    """Stored job and task records this API process could not read: left out of every
    answer (never failing one), kept in the store untouched for an operator to repair or
    set aside, each with the reason it could not be read."""
    return {"items": _service(request).records()}


@router.delete("/{kind}/{record_id}")
async def set_aside(
    request: Request,
    record_id: str,
    kind: str = Path(json_schema_extra={"enum": list(_MODELS)}),
) -> dict[str, Any]:
    """Move an unreadable active job (with its active tasks) or task to the archive as it
    is stored, so that its job is reconciled again (admins only; 409 for a record that
    reads fine)."""
    return await run_in_threadpool(
        _service(request).set_aside, kind, record_id, principal_of(request)
    )
