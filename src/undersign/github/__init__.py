"""Everything that knows how to talk to GitHub: the REST client and webhook checks."""
