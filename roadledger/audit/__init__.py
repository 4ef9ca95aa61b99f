"""The audit log: every login, token and key change, grant, revocation and data access, as
leaves of a log of the ledger (RFC 9162, origin ``<origin_prefix>/audit``) with stored C2SP
checkpoints signed by the log key and cosigned by witnesses.

``events`` says what a leaf holds (ids and codes only), ``log`` opens, appends and signs,
``signing`` keeps the checkpoints coming while the API runs, ``record`` builds the events the
API writes, ``query`` lists them for the organisations that may see them.
"""
