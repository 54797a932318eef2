"""Where strop keeps its state. Every path derives from STROP_HOME so one variable moves it all."""

from __future__ import annotations

import os
from pathlib import Path


def strop_home() -> Path:
    home = Path(os.environ.get("STROP_HOME", "~/.strop")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_cache_dir() -> Path:
    path = strop_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
