"""Forecasts: segment speed and flow minutes ahead, annual mileage per vehicle.

Pure numpy below :mod:`store` and :mod:`refresh` (which talk to PostgreSQL):

- :mod:`grid`: :class:`SeriesGrid`, series on a regular time grid with a clock and neighbours;
- :mod:`windows`, :mod:`baselines`, :mod:`evaluation`: the Los-loop (T-GCN) protocol;
- :mod:`profile`, :mod:`features`, :mod:`ridge`: the robust lag-ridge model;
- :mod:`losloop`: the real Los Angeles loop-detector data set;
- :mod:`segments`, :mod:`mileage`: RoadLedger's own segments and vehicles.

``docs/forecasts.md`` describes the model, the protocol and the measured figures.
"""

from __future__ import annotations

from analytics.forecast.grid import GridError, SeriesGrid
from analytics.forecast.ridge import LagRidgeForecaster, RidgeConfig

__all__ = ["GridError", "LagRidgeForecaster", "RidgeConfig", "SeriesGrid"]
