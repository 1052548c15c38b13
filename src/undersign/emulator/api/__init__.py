"""The emulator's HTTP surfaces, one Flask blueprint module each: ``rest`` (``/api/v3``),
``apps`` (the GitHub App routes and check runs), ``oauth`` (``/login/oauth/...``) and
``control`` (``/_emulator``: the test API and the inspection pages).

They are thin: they parse the request, check what GitHub checks, and read or change
:class:`~undersign.emulator.state.GitHubEmulator` through its public names.  They share
:mod:`undersign.emulator.http`; :mod:`undersign.emulator.server` wires them into one app.
"""
