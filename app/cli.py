"""The ``roadledger`` command: one entry point, one subcommand per component.

Each subcommand lives in ``app/commands/<name>.py`` and provides ``HELP`` (one line),
``configure(parser)`` and ``run(args, settings) -> int``. Command modules import their heavy
dependencies inside ``run`` so that ``roadledger --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from contracts.errors import CommandError, DomainError, Unavailable
from roadledger import __version__
from roadledger.settings import SettingsError, load_settings

__all__ = ["COMMANDS", "build_parser", "main"]

# name -> module; the order is the order of `roadledger --help`.
COMMANDS: dict[str, str] = {
    "demo": "app.commands.demo",
    "services": "app.commands.services",
    "devices": "app.commands.devices",
    "sim": "app.commands.sim",
    "bridge": "app.commands.bridge",
    "ingest": "app.commands.ingest",
    "sequencer": "app.commands.sequencer",
    "ledger": "app.commands.ledger",
    "health": "app.commands.health",
    "analytics": "app.commands.analytics",
    "proof": "app.commands.proof",
    "verify": "app.commands.verify",
    "witness": "app.commands.witness",
    "api": "app.commands.api",
    "forecast": "app.commands.forecast",
    "rules": "app.commands.rules",
    "score": "app.commands.score",
}

DESCRIPTION = """\
RoadLedger: signed vehicle telemetry, a tamper-evident ledger, verifiable mileage.

Configuration comes from ROADLEDGER_* environment variables (see README.md).
Run `roadledger COMMAND --help` for the options of one command."""


def _load(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="roadledger",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"roadledger {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = _load(module_name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, build settings once, run the chosen subcommand; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        code: int = args._module.run(args, settings)
    except SettingsError as exc:
        print(f"roadledger: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"roadledger {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except DomainError as exc:  # a refusal no command translated: its one line is enough
        print(f"roadledger {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, Unavailable) else 1
    except KeyboardInterrupt:
        print(f"roadledger {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
