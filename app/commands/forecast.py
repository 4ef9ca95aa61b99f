"""``roadledger forecast``: evaluate the speed model on Los-loop; refresh stored forecasts."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._args import positive_float
from contracts.errors import CommandError

if TYPE_CHECKING:
    import asyncpg

    from analytics.forecast.evaluation import Evaluation, FloorCheck
    from analytics.forecast.refresh import RefreshConfig, RefreshSummary
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "segment speed/flow and annual mileage forecasts: evaluate the model, refresh the tables"

DESCRIPTION = """\
Forecasts of road-segment speed and flow 15, 30 and 60 minutes ahead, and of each vehicle's
annual mileage with an interval (docs/forecasts.md).

  evaluate   fit the model on real Los Angeles loop-detector speeds (Los-loop, T-GCN
             protocol) and print MAE/RMSE at 15/30/45/60 minutes for the model and the
             last-value and window-mean baselines, then the acceptance floors.
             Exit 1 when a floor is missed.
  run        read segment_speed_5m and telemetry, write segment_forecasts and
             vehicle_mileage_forecasts; --once (default) or --every SECONDS."""

EVALUATE_HELP = "score the model and both baselines on Los-loop; exit 1 if a floor is missed"
RUN_HELP = "refresh the stored segment and mileage forecasts, once or periodically"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` and ``run`` actions."""
    actions = parser.add_subparsers(dest="forecast_action", metavar="ACTION", required=True)
    evaluate = actions.add_parser("evaluate", help=EVALUATE_HELP, description=EVALUATE_HELP)
    evaluate.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the Los-loop directory (default: <ROADLEDGER_SHARED_DIR>/data/los-loop)",
    )
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    refresh = actions.add_parser("run", help=RUN_HELP, description=RUN_HELP)
    when = refresh.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one refresh, then exit (default)")
    when.add_argument(
        "--every", type=positive_float, metavar="SECONDS", help="refresh every SECONDS until ^C"
    )
    refresh.add_argument(
        "--history-days",
        type=positive_float,
        default=14.0,
        metavar="DAYS",
        help="segment history fed to the model (default 14)",
    )
    refresh.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen action; return the exit code."""
    if args.forecast_action == "evaluate":
        return _evaluate(args, settings)
    if args.forecast_action == "run":
        return asyncio.run(_refresh_loop(args, settings))
    raise CommandError(f"unknown action {args.forecast_action!r}", exit_code=2)  # pragma: no cover


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from analytics.forecast.evaluation import evaluate, floor_checks
    from analytics.forecast.grid import GridError
    from analytics.forecast.losloop import LosLoopMissing, load_los_loop, los_loop_dir

    data = args.data if args.data is not None else los_loop_dir(settings.shared_dir)
    try:
        grid = load_los_loop(data)
    except LosLoopMissing as exc:
        raise CommandError(f"--data: {exc}", exit_code=2) from exc
    except GridError as exc:
        raise CommandError(f"--data: {exc}", exit_code=2) from exc
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=args.quiet) as progress:
        task = progress.add_task("fitting", total=1)

        def on_progress(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        evaluation = evaluate(grid, progress=on_progress)
    print(_table(evaluation, data, time.monotonic() - started))
    checks = floor_checks(evaluation)
    print(_floors(checks))
    return 0 if all(c.passed for c in checks) else 1


def _table(evaluation: Evaluation, data: Path, seconds: float) -> str:
    minutes = [h * evaluation.step_minutes for h in evaluation.horizons]
    lines = [
        f"Los-loop ({data}): {evaluation.series} sensors, {evaluation.train_steps} training "
        f"steps, {evaluation.test_windows} test windows; errors in mph; {seconds:.0f} s",
        "",
        f"{'method':<12}" + "".join(f"{f'MAE {m}m':>10}" for m in minutes)
        + "".join(f"{f'RMSE {m}m':>10}" for m in minutes),
    ]  # fmt: skip
    for name, by_horizon in evaluation.scores.items():
        maes = "".join(f"{by_horizon[h].mae:>10.3f}" for h in evaluation.horizons)
        rmses = "".join(f"{by_horizon[h].rmse:>10.3f}" for h in evaluation.horizons)
        lines.append(f"{name:<12}{maes}{rmses}")
    return "\n".join(lines)


def _floors(checks: list[FloorCheck]) -> str:
    lines = ["", "floors (model / baseline):"]
    for check in checks:
        verdict = "PASS" if check.passed else "FAIL"
        bound = f"<= {check.limit:.2f}" if check.limit < 0.999 else "< 1"
        lines.append(f"  {verdict}  {check.description}: {check.ratio:.3f} ({bound})")
    passed = sum(c.passed for c in checks)
    lines.append(f"{passed} passed, {len(checks) - passed} failed")
    return "\n".join(lines)


async def _refresh_loop(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    import asyncpg

    from analytics.forecast.refresh import RefreshConfig
    from roadledger.db.schema import apply_schema

    config = RefreshConfig(segment_history=timedelta(days=args.history_days))
    if args.every is not None:
        return await _refresh_every(args.every, settings, config, quiet=args.quiet)
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise CommandError(f"database_url: cannot connect ({exc})") from exc
    try:
        await apply_schema(conn)
        started = time.monotonic()
        summary = await _refresh_once(conn, config, quiet=args.quiet)
        print(_summary(summary, time.monotonic() - started), flush=True)
        return 0
    finally:
        await conn.close()


async def _refresh_every(
    every_s: float, settings: Settings, config: RefreshConfig, *, quiet: bool
) -> int:
    """Refresh every ``every_s`` until SIGTERM/SIGINT (then exit 0). A PostgreSQL outage, at
    start too, is waited out (backoff, one log line each way); a refresh it interrupted is
    done again (its writes are one transaction of upserts)."""
    import logging
    import signal

    from roadledger.db.pool import wait_for_pool
    from roadledger.db.schema import apply_schema
    from roadledger.health import start_reporting_health
    from roadledger.resilience import (
        Dependency,
        RetryPolicy,
        quiet_client_retries,
        serve_until_stopped,
        wait_or_stop,
    )

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    quiet_client_retries()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    database = Dependency("PostgreSQL", logging.getLogger("roadledger.forecast"))
    start_reporting_health(settings, "forecast", [database], stop)
    retry = RetryPolicy()

    async def refresh_until_stopped() -> None:
        # A wrong password: DatabaseUnavailable, one line.
        pool = await wait_for_pool(settings, stop, database, max_size=1, retry=retry)
        if pool is None:
            return
        try:

            async def schema() -> None:
                async with pool.acquire() as conn:
                    await apply_schema(conn)

            if not await retry.run(schema, database, stop):
                return
            while not stop.is_set():
                started = time.monotonic()

                async def refresh() -> RefreshSummary:
                    async with pool.acquire() as conn:
                        return await _refresh_once(conn, config, quiet=quiet)

                summary = await retry.call(refresh, database, stop)
                if summary is None:  # stopped during an outage
                    return
                print(_summary(summary, time.monotonic() - started), flush=True)
                await wait_or_stop(stop, max(0.0, every_s - (time.monotonic() - started)))
        finally:
            try:
                await asyncio.wait_for(pool.close(), timeout=1)
            except Exception:  # a server that is down or paused: the process is ending anyway
                pool.terminate()

    # A refresh under way at SIGTERM gets a few seconds, then is abandoned (it is repeated
    # at the next start; nothing half-written stays: one transaction).
    await serve_until_stopped(refresh_until_stopped(), stop, grace_s=3.0, cleanup_s=1.5)
    return 0


async def _refresh_once(
    conn: asyncpg.Connection, config: RefreshConfig, *, quiet: bool
) -> RefreshSummary:
    """One refresh at the current time, with a progress bar on stderr unless ``quiet``."""
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from analytics.forecast.refresh import refresh_forecasts

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("reading history", total=None)

        def on_progress(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        return await refresh_forecasts(conn, datetime.now(UTC), config, on_progress)


def _summary(summary: RefreshSummary, seconds: float) -> str:
    methods = ", ".join(f"{n} {m}" for m, n in sorted(summary.speed_methods.items())) or "none"
    flows = ", ".join(f"{n} {m}" for m, n in sorted(summary.flow_methods.items())) or "none"
    text = (
        f"issued {summary.issued_at.isoformat()}: {summary.segments} segments "
        f"({summary.segment_rows} rows; speed by {methods}; flow by {flows}), "
        f"{summary.vehicles} vehicle mileage projections, {seconds:.1f} s"
    )
    for device, reason in sorted(summary.skipped_vehicles.items()):
        text += f"\n  skipped {device}: {reason}"
    return text
