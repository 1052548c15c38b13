"""Agreements, their versions, signatures and receipts.

This package is the record of who agreed to exactly which text, and when. It never imports
Flask: services take a SQLAlchemy ``Session`` and plain values, so the web layer, the command
line and the enforcement worker all share the same rules.
"""
