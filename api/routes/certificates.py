"""Mileage certificates from the live ledger (``docs/mileage-certificate.md``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.access import require_access
from api.deps import PoolDep, PrincipalDep, SettingsDep, SignersDep
from api.errors import ERROR_RESPONSES
from api.models.ledger import CertificateCreate
from chain.note_signers import Ed25519Verifier
from contracts.access import Scope
from roadledger.certificates import issue_certificate
from roadledger.log_key import existing_log_key

__all__ = ["router"]

router = APIRouter(prefix="/v1/vehicles", tags=["certificates"], responses=ERROR_RESPONSES)

_CERTIFICATE_RESPONSE: dict[int | str, dict[str, object]] = {
    201: {
        "description": "The certificate file (roadledger/mileage-certificate/v1); check it "
        "with `roadledger verify` and the keys of GET /v1/ledger/keys",
        "content": {"application/json": {}},
    }
}


@router.post(
    "/{device_id}/certificates",
    status_code=201,
    response_class=Response,
    responses=_CERTIFICATE_RESPONSE,
)
async def certificate(
    device_id: str,
    body: CertificateCreate,
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    signers: SignersDep,
) -> Response:
    """Build the vehicle's mileage certificate for ``from_ms <= ts < to_ms``: its messages,
    each with an inclusion proof to one checkpoint (the one most witnesses cosigned), its key
    records, the hash-chain links and the summary, anomalies included; verified with the log's
    and the witnesses' keys before it is returned. Needs the ``certificate`` scope on the
    vehicle (its owner, or a grant)."""
    await require_access(
        pool, principal, device_id, Scope.CERTIFICATE,
        action="POST /v1/vehicles/{device_id}/certificates",
    )  # fmt: skip
    key = existing_log_key(settings)
    issued = await issue_certificate(
        pool, device_id, body.from_ms, body.to_ms,
        lambda origin: Ed25519Verifier.from_vkey(key.vkey(origin)), signers,
    )  # fmt: skip
    name = f"{device_id}-{body.from_ms}-{body.to_ms}.json"
    return Response(
        issued.certificate.to_json(),
        status_code=201,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-RoadLedger-Log": str(issued.log.log_id),
            "X-RoadLedger-Tree-Size": str(issued.tree_size),
        },
    )
