"""Rules: an authority publishes signed versions; every member reads them.

The body of ``POST /v1/rules`` is the signed document ``roadledger rules sign`` writes (a
compact JWS, ``application/jose``), checked exactly as ``roadledger rules publish`` checks it
(``roadledger.rules_store.publish_rules``: signature, sovereignty, bounds, version), and
also for the caller: an admin of the authority whose document it is.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.rules import RuleVersionCreatedPublic, RuleVersionDetailPublic, RuleVersionPublic
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from contracts.access import OrgKind, Role
from contracts.rules.errors import RulesInvalid, RulesNotFound
from contracts.rules.limits import MAX_SIGNED_BYTES
from contracts.rules.signing import SignedRules
from roadledger.identity.errors import NotPermitted
from roadledger.rules_store import (
    StoredVersion,
    find_rule_versions,
    get_rule_version,
    page_rule_versions,
    publish_rules,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/rules", tags=["rules"], responses=ERROR_RESPONSES)

_VERSION = re.compile(r"^(?:(?P<rule_set>[A-Za-z0-9._:-]{1,64})@)?(?P<number>[1-9][0-9]{0,8})$")
_SIGNED_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A signed rules document (compact JWS), as `roadledger rules sign` "
        "writes it: `eyJhbGciOiJFZDI1NTE5Ii...<payload>.<signature>`",
        # No "example": a placeholder is no JWS, and generators would send it as one.
        "content": {"application/jose": {"schema": {"type": "string"}}},
    }
}


def _public(v: StoredVersion) -> dict[str, Any]:
    return {
        "label": v.label,
        "org_id": v.org_id,
        "rule_set": v.rule_set,
        "version": v.version,
        "effective_from_ms": v.effective_from_ms,
        "key_id": v.key_id,
        "published_at_ms": v.published_at_ms,
    }


async def _body(request: Request) -> bytes:
    """The request body, refused unread past the signed-rules limit."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_SIGNED_BYTES:
            raise RulesInvalid("body", f"over {MAX_SIGNED_BYTES} bytes, the limit of signed rules")
    return bytes(data)


@router.post(
    "", status_code=201, response_model=RuleVersionCreatedPublic, openapi_extra=_SIGNED_BODY
)
async def publish(
    request: Request, principal: PrincipalDep, pool: PoolDep
) -> RuleVersionCreatedPublic:
    """Publish a signed rules version of the caller's authority (an admin of it): verified,
    inside its jurisdiction, within the published bounds, and above the latest version."""
    if principal.org_kind != OrgKind.AUTHORITY or not principal.has(Role.ADMIN):
        raise NotPermitted("only an authority's admin publishes rules")
    signed = await _body(request)
    now_ms = time.time_ns() // 1_000_000
    async with pool.acquire() as conn:
        rules = await publish_rules(conn, signed, now_ms, publisher=principal.org_id)
        (stored,) = await find_rule_versions(conn, rules.org_id, rules.rule_set, rules.version)
    return RuleVersionCreatedPublic(**_public(stored))


@router.get("", response_model=Page[RuleVersionPublic])
async def list_versions(
    principal: PrincipalDep,
    pool: PoolDep,
    org_id: Annotated[str | None, Query(max_length=64, description="Only this publisher's")] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[RuleVersionPublic]:
    """Every published version (any member), by publisher, rule set and version."""
    del principal  # rules are public law: every member may read every version
    key = decode_cursor(cursor, 3)
    after = (str(key[0]), str(key[1]), int(key[2])) if key is not None else None
    rows = await page_rule_versions(pool, org_id=org_id, after=after, limit=limit + 1)
    items = [RuleVersionPublic(**_public(v)) for v in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.org_id, last.rule_set, last.version]) if last else None
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{org_id}/{version}", response_model=RuleVersionDetailPublic)
async def get_version(
    org_id: str, version: str, principal: PrincipalDep, pool: PoolDep
) -> RuleVersionDetailPublic:
    """One version with its signed bytes. ``version`` is ``rule_set@N`` (a warning's
    ``rule_version`` is ``org_id/rule_set@N``), or ``N`` when only one rule set has an N."""
    del principal
    match = _VERSION.match(version)
    if match is None:
        raise RulesInvalid("version", "expected rule_set@N or N (N >= 1)")
    number, rule_set = int(match["number"]), match["rule_set"]
    if rule_set is None:
        found = await find_rule_versions(pool, org_id, None, number)
        if len(found) > 1:
            names = ", ".join(f"{v.rule_set}@{number}" for v in found)
            raise RulesInvalid("version", f"{number} is ambiguous: name one of {names}")
        if not found:
            raise RulesNotFound("version", f"{org_id!r} has no version {number}")
        rule_set = found[0].rule_set
    stored, rules = await get_rule_version(pool, org_id, rule_set, number)
    # The payload verified by get_rule_version, as the authority wrote it (not re-serialised).
    document = json.loads(SignedRules.from_bytes(rules.signed).payload)
    return RuleVersionDetailPublic(
        **_public(stored), signed=rules.signed.decode("ascii"), document=document
    )
