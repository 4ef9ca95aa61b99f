"""RoadLedger's kernel: what the components share at run time.

Settings, health reports, resilience (outages and backoff), the device registry and the rules
store, MQTT accounts, the log key, the database (``db/``: schema, migrations, pools, the ledger
store) and streams (``stream/``: Kafka and in-memory behind one interface). Imports only
:mod:`chain` and :mod:`contracts` of the project (docs/architecture.md).
"""

__version__ = "0.1.0"
