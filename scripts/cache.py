"""Where the project's caches live, by one rule for every script, test and build.

``$PHOENIX_CACHE`` if set, else ``$XDG_CACHE_HOME/phoenixtwin``, else
``~/.cache/phoenixtwin``: the rule the shell build scripts follow
(``${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}``), an empty variable
counting as unset, as there and in the XDG Base Directory specification.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The directory every cache of the project lives under (not created here)."""
    if explicit := os.environ.get("PHOENIX_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "phoenixtwin"
