"""The write pacer moved to :mod:`undersign.github.pacing` (it paces GitHub's limits and
owns GitHub's tables); this name stays for the modules that still import it from here."""

from __future__ import annotations

from undersign.github.pacing import WritePacer, token_key

__all__ = ["WritePacer", "token_key"]
