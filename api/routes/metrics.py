"""``GET /metrics``: the whole deployment's counters in the Prometheus text format.

One scrape target, behind the API's authentication (a member or API key with the ``operator``
role; Prometheus sends the key as a bearer token): every long-running process's last health
report with the counters it carries (``roadledger.metrics``), each process's state and its
dependencies, the ledger's tree sizes from the database, and this API's own request counts.
"""

from __future__ import annotations

import time
from collections import Counter

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import PoolDep, PrincipalDep, SettingsDep
from api.errors import ERROR_RESPONSES
from contracts.access import OrgKind, Role
from roadledger.health import read_health
from roadledger.identity.errors import NotPermitted
from roadledger.metrics import Sample, render

__all__ = ["RequestCounts", "count_requests", "router"]

router = APIRouter(tags=["operations"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestCounts:
    """This API process's requests: count and seconds by method, route template and status."""

    def __init__(self) -> None:
        self.count: Counter[tuple[str, str, str]] = Counter()
        self.seconds: dict[tuple[str, str, str], float] = {}

    def samples(self) -> list[Sample]:
        found = []
        for key in sorted(self.count):
            labels = tuple(zip(("method", "route", "status"), key, strict=True))
            found.append(Sample("roadledger_api_requests_total", self.count[key], labels))
            found.append(Sample("roadledger_api_request_seconds_total", self.seconds[key], labels))
        return found


class _Counting:
    """Counts each request by the route template the router matched (it leaves the route in
    the scope), never the raw path: ids in paths would make a metric per id. A plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` runs every request in an extra task with
    memory streams, which cost more than a proof route's own Python work
    (``bench/api_load.py``), and it times the response only until its headers."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = "500"

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            key = (scope["method"], str(getattr(scope.get("route"), "path", "unmatched")), status)
            self.counts.count[key] += 1
            elapsed = time.perf_counter() - began
            self.counts.seconds[key] = self.counts.seconds.get(key, 0.0) + elapsed


def count_requests(app: FastAPI, counts: RequestCounts) -> None:
    """Count every request of ``app`` into ``counts`` (a middleware)."""
    app.add_middleware(_Counting, counts=counts)


async def _operations(principal: PrincipalDep) -> None:
    """The operator role of an operator organisation: any organisation's admin gives its
    members any role, but the deployment's counters are the operator's to see (as only a
    witness organisation's witness role cosigns)."""
    if principal.org_kind != OrgKind.OPERATOR or not principal.has(Role.OPERATOR):
        raise NotPermitted("metrics need the operator role of the operator organisation")


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/plain": {}}, "description": "Metrics"}},
    summary="Prometheus metrics",
    dependencies=[Depends(_operations)],
)
async def metrics(request: Request, pool: PoolDep, settings: SettingsDep) -> Response:
    """Every process's counters, states and dependencies, the ledger's tree sizes and this
    API's requests, in the Prometheus text format (role ``operator`` of the operator)."""
    samples: list[Sample] = []
    stale_after = 3 * settings.health_interval_s
    for report in read_health(settings.health_path, stale_after_s=stale_after):
        process = (("process", report.name),)
        samples.append(Sample("roadledger_process_up", float(report.ok), process))
        samples.append(Sample("roadledger_process_state", 1, (*process, ("state", report.state))))
        samples += [
            Sample("roadledger_dependency_up", float(up), (*process, ("dependency", name)))
            for name, up in report.dependencies
        ]
        samples += [sample.with_labels(process=report.name) for sample in report.samples]
    for row in await pool.fetch("SELECT origin, tree_size FROM ledger_logs ORDER BY origin"):
        samples.append(
            Sample("roadledger_log_tree_size", row["tree_size"], (("log", row["origin"]),))
        )
    samples += request.app.state.request_counts.samples()
    return Response(render(samples), media_type=CONTENT_TYPE)
