"""Test support: a live server, database setup and sign-in helpers (no mocks)."""
