"""Subcommands of the ``roadledger`` CLI, one module each (see ``roadledger.cli``)."""
