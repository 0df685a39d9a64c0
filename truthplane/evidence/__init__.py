"""The evidence trail: the hash-chained ledger of execution records, attestations (signatures), `verify`, the
history index in SQLite, `gc` and the HTML report.

Uses git (to read) and the base only.
"""
