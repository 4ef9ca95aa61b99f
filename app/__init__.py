"""The application shell: the ``roadledger`` command line, its subcommands, the demo and the
scoring of a run against its ground truth. The only shipped package that may import every
other one (docs/architecture.md).
"""
