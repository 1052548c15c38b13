"""CLA enforcement domain logic: who contributed to a pull request, who still has to sign, and
what undersign tells GitHub about it.

Everything in this package is pure (plain data in, plain data out) so that the decision can be
tested exhaustively without GitHub, a database or a web framework; the service layer that talks
to GitHub and the database feeds it and publishes its results.
"""
