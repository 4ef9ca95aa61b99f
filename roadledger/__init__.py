"""RoadLedger: shared plumbing (settings, CLI, local services) for the component packages."""

__version__ = "0.1.0"
