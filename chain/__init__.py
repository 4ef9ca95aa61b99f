"""chain: the ledger, pure and dependency-light (pynacl and the standard library only).

An insurer's offline verifier imports only this package. ``ingest``, ``analytics`` and ``api``
depend on ``chain``; never the other way round. Storage is a narrow interface given to it.
"""
