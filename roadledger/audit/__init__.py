"""The audit log: every login, token and key change, grant, revocation and data access, as
leaves of an RFC 9162 Merkle log in PostgreSQL with C2SP checkpoints signed by the log key.

``events`` says what a leaf holds (ids and codes only), ``log`` appends and proves, ``record``
builds the events the API writes, ``query`` lists them for the organisations that may see them.
"""
