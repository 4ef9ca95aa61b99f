"""Simulated vehicles and roadside units that sign and publish telemetry."""
