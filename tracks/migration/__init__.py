"""Online storage migration: claim rows, copy and verify bytes, settle, report.

`runner.storage_migrate` wires the parts: `claims` (leases in id order,
renewed by a heartbeat), `copying` (bytes and attached files, verified, no
rows touched), `settling` (flips, failures, copies of deleted rows),
`tallying` (the run's counters) and `plan` (what would move, from the
storage tallies). `reporting` turns a run into text and JSON.
"""
