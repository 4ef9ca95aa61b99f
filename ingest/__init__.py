"""Ingest: MQTT -> Kafka bridge, verifier and store writer (see DESIGN.md, Flow)."""
