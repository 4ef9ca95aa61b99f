"""Contracts: what the components agree on, pure data and arithmetic.

Topic names and record headers, roads and map matching, rule documents and the published
thresholds, the domain error kinds. Imports only :mod:`chain` of the project, so every layer
above may use it (docs/architecture.md).
"""
