"""The demo's live progress (rich) and its closing summary."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from app.demo.outcome import DemoResult
from app.demo.pipeline import PipelineCounts

__all__ = ["ProgressView", "print_summary"]


@dataclass
class _Sample:
    at: float
    published: int
    verified: int
    stored: int


class ProgressView:
    """Renders one frame of progress from the counters; keeps the previous frame for rates."""

    def __init__(self, expected_total: int) -> None:
        self.expected_total = expected_total
        self.phase = "starting"
        self._last: _Sample | None = None
        self._rates = (0.0, 0.0, 0.0)
        self._began = time.monotonic()

    def _rate(self, published: int, counts: PipelineCounts) -> tuple[float, float, float]:
        now = time.monotonic()
        sample = _Sample(now, published, counts.raw, counts.stored_rows)
        last = self._last
        if last is None or now - last.at >= 1.0:
            if last is not None:
                span = now - last.at
                self._rates = (
                    (sample.published - last.published) / span,
                    (sample.verified - last.verified) / span,
                    (sample.stored - last.stored) / span,
                )
            self._last = sample
        return self._rates

    def render(self, published: int, acked: int, counts: PipelineCounts) -> Group:
        pub_rate, raw_rate, store_rate = self._rate(acked, counts)
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("stage")
        table.add_column("count", justify="right")
        table.add_column("rate", justify="right")
        table.add_row(
            "published (acked)",
            f"{acked:,} / ~{self.expected_total:,}",
            f"{pub_rate:,.0f}/s",
        )
        table.add_row("in telemetry.raw", f"{counts.bridged:,}", "")
        table.add_row("verified", f"{counts.verified:,}", f"{raw_rate:,.0f}/s read")
        table.add_row("quarantined", f"{counts.quarantined:,}", "")
        for reason, n in sorted(counts.rejected.items()):
            table.add_row(f"  {reason}", f"{n:,}", "")
        table.add_row(
            "stored rows",
            f"{counts.stored_new:,} (+{counts.observations:,} sightings)",
            f"{store_rate:,.0f}/s",
        )
        sizes = ", ".join(f"p{p}={s:,}" for p, s in sorted(counts.tree_sizes.items())) or "-"
        table.add_row("ledger", f"{counts.ledger_blocks:,} blocks", sizes)
        elapsed = time.monotonic() - self._began
        title = Text(f"roadledger demo: {self.phase} ({elapsed:,.0f} s)", style="bold")
        return Group(title, table)

    def line(self, acked: int, counts: PipelineCounts) -> str:
        """One plain line for ``--no-dashboard``."""
        return (
            f"[{self.phase}] published {acked}, raw {counts.bridged}, verified {counts.verified}, "
            f"quarantined {counts.quarantined}, stored {counts.stored_new}, ledger "
            f"{counts.ledger_entries} entries in {counts.ledger_blocks} blocks"
        )


def print_summary(console: Console, result: DemoResult) -> None:
    """Expected vs observed per outcome, the ledger, and where the data is."""
    table = Table(title="outcomes: simulator truth vs pipeline", header_style="bold")
    table.add_column("outcome")
    table.add_column("expected", justify="right")
    table.add_column("observed", justify="right")
    table.add_column("")
    for name, expected, observed in result.rows:
        mark = "[green]ok[/]" if expected == observed else "[red]differs[/]"
        table.add_row(name, f"{expected:,}", f"{observed:,}", mark)
    table.add_row(
        "[bold]total[/]",
        f"{sum(result.expected.values()):,}",
        f"{sum(result.observed.values()):,}",
        f"published {result.published:,}",
    )
    console.print(table)
    counts = result.counts
    sizes = ", ".join(f"partition {p}: {s:,}" for p, s in sorted(counts.tree_sizes.items()))
    console.print(
        f"ledger: {counts.ledger_entries:,} entries in {counts.ledger_blocks:,} blocks"
        + (f" (tree sizes {sizes})" if sizes else "")
    )
    if result.start_to_first_publish_s is not None:
        phases = ", ".join(f"{name} {at:.1f} s" for name, at in result.startup.items())
        console.print(
            f"start to first publish: {result.start_to_first_publish_s:.1f} s"
            + (f" (done by: {phases})" if phases else "")
        )
    for role, where in result.services.items():
        console.print(f"{role}: {where}")
    console.print(f"data: {result.database_url}")
    if result.truth_path is not None:
        console.print(f"truth: {result.truth_path}")
    if result.warning_report is not None:
        console.print("warnings (analytics) against the truth's events:")
        console.print(result.warning_report.table(), markup=False, highlight=False)
    if result.interrupted:
        console.print("[yellow]interrupted: counts cover what was published until then[/]")
    elif not result.drained:
        console.print("[red]the pipeline did not finish every published message in time[/]")
    elif result.accounted:
        console.print("[green]every published message is accounted for, as the truth says[/]")
    else:
        console.print("[red]the pipeline's outcomes differ from the truth[/]")
