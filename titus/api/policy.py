"""What a principal may do and see: the API's authorization rules, for every transport.

- A job's owners are the principal that created it (`titus.createdBy`, recorded from the
  token at create) and its declared team (`owner.teamEmail`, matched against the
  principal's email and teams). Only an owner or an admin may change a job or its tasks
  (kill, resize, enable or disable, processes, disruption budget, attributes, task kill
  and move) or read its tasks' output.
- Instance group lifecycles and capacity groups are changed by admins only; hosts'
  addresses are shown to admins only.
- `container.env` values (where secrets live) are shown to owners and admins; anyone else
  reads each value as REDACTED, keys kept, so a job's shape stays visible.

Every refusal is a 403 whose message names the rule. Without authentication every caller
is allowed everything (see auth.open_principal), so these rules then change nothing.
"""

from __future__ import annotations

from typing import Any

from titus.api.auth import Principal
from titus.api.errors import ApiError
from titus.model.job import Job

#: What a hidden `container.env` value reads as.
REDACTED = "<redacted>"
#: The job attribute that records who created the job.
CREATED_BY = "titus.createdBy"


def owners(job: Job) -> tuple[str, str]:
    """(creator, team email) of a job, either possibly empty."""
    descriptor = job.jobDescriptor
    return descriptor.attributes.get(CREATED_BY, ""), descriptor.owner.teamEmail


def _doc_owners(doc: dict[str, Any]) -> tuple[str, str]:
    """(creator, team email) of a job's API document (an archived job has no model)."""
    descriptor = doc.get("jobDescriptor") or {}
    attributes = descriptor.get("attributes") or {}
    return str(attributes.get(CREATED_BY, "")), str(
        (descriptor.get("owner") or {}).get("teamEmail", "")
    )


def _is_owner(principal: Principal, creator: str, team: str) -> bool:
    if principal.is_admin:
        return True
    if not principal.authenticated:
        return False
    if creator and creator == principal.name:
        return True
    team = team.strip().lower()
    return bool(team) and (team in principal.emails or team == principal.name.lower())


def owns(principal: Principal, job: Job) -> bool:
    """Whether `principal` may change `job` and read its secrets and output."""
    return _is_owner(principal, *owners(job))


def require_owner(principal: Principal, job: Job, action: str) -> None:
    """Refuse (403) a change to `job` by anyone but its owners and admins."""
    if owns(principal, job):
        return
    creator, team = owners(job)
    named = " and ".join(
        part for part in (f"its creator {creator}" if creator else "", f"team {team}") if part
    )
    raise ApiError(
        403,
        f"caller {principal.name or 'anonymous'} may not {action} job {job.id}: only "
        f"{named} or an admin may (rule: job owner)",
    )


def admin_refusal(principal: Principal, action: str) -> str:
    """The words of a 403 for a non-admin's operator change, the same from the gate (by
    path) and from the service layer (by action)."""
    return (
        f"caller {principal.name or 'anonymous'} may not {action}: admins only (rule: admin role)"
    )


def require_admin(principal: Principal, action: str) -> None:
    """Refuse (403) an operator's change by anyone who is not an admin."""
    if not principal.is_admin:
        raise ApiError(403, admin_refusal(principal, action))


def redact(doc: dict[str, Any]) -> dict[str, Any]:
    """A job document with each `container.env` value REDACTED; the original (possibly
    the view's shared document) is left as it is, and only the path to env is copied."""
    descriptor = doc.get("jobDescriptor") or {}
    container = descriptor.get("container") or {}
    env = container.get("env")
    if not env:
        return doc
    hidden = {**container, "env": dict.fromkeys(env, REDACTED)}
    return {**doc, "jobDescriptor": {**descriptor, "container": hidden}}


def job_doc(principal: Principal, doc: dict[str, Any]) -> dict[str, Any]:
    """The job document `principal` may read: whole for owners and admins, else redacted
    (the same object when nothing is hidden, so callers may tell by identity)."""
    return doc if _is_owner(principal, *_doc_owners(doc)) else redact(doc)
