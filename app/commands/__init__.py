"""Subcommands of the ``roadledger`` CLI, one module each (see ``app.cli``)."""
