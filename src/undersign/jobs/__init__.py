"""The durable job queue: Huey carries job ids, the ``jobs`` table is the truth.

Huey (SQLite file or Redis) wakes workers quickly and keeps scheduled retries, but it loses a
task whose worker died mid-run. So every unit of work is first a row in ``jobs`` (written in
the same transaction as whatever caused it); a worker claims the row with a lease, and a
sweeper re-enqueues rows whose lease ran out. No Flask here: workers build their own context.
"""
