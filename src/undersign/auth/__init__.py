"""Signing in with GitHub and server-side sessions."""
