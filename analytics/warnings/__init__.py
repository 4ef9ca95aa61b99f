"""Warnings from the verified stream: what a traffic department is told, with its evidence.

:mod:`~analytics.warnings.model` (the warning record), :mod:`~analytics.warnings.detectors`
(pure per-device detectors), :mod:`~analytics.warnings.store` (the ``warnings`` table),
:mod:`~analytics.warnings.engine` (``roadledger analytics``: stream in, warnings stored and
published). ``docs/warnings.md`` lists each type with its rule.
"""
