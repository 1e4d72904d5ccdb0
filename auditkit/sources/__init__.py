"""Upstream APIs: HTTP plumbing (`client`), paging (`paging`), API facts (`multimail`, `intercom`).

Nothing in this package touches the store; `auditkit.harvest` connects the two.
"""
