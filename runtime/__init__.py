"""Runtime: the services RoadLedger runs on, started on this machine.

``services/`` fetches and runs PostgreSQL, Mosquitto and Kafka on loopback (``roadledger
services``); ``embedded/`` runs the demo's PostgreSQL and MQTT broker with nothing installed.
Imports the kernel and the contracts, never a component (docs/architecture.md).
"""
