"""The HTTP API (FastAPI) for authorities, insurers, auditors and witnesses."""
