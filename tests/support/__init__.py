"""Test support: a live server, database setup, sign-in and page helpers (no mocks).

What more than one test module uses lives here, one module per concern, never in a ``test_*``
module: ``tests/unit/test_test_imports.py`` fails when a test module imports another."""
