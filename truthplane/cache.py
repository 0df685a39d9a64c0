"""Result cache: by (verifier, version, config hash, file content hash) for file-local tools, by tree
hash for whole-program tools. A corrupt entry is discarded and recomputed, never trusted."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$TRUTHPLANE_CACHE_DIR, else the standard per-user cache location."""
    override = os.environ.get("TRUTHPLANE_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("truthplane", appauthor=False))
