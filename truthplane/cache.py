"""Result cache: by (verifier, version, config hash, file content hash) for file-local tools, by tree
hash for whole-program tools. A corrupt entry is discarded and recomputed, never trusted."""

from __future__ import annotations

import os
from pathlib import Path

from truthplane.models import Finding


def default_cache_dir() -> Path:
    """$TRUTHPLANE_CACHE_DIR, else the standard per-user cache location."""
    override = os.environ.get("TRUTHPLANE_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("truthplane", appauthor=False))


class ResultCache:
    """Findings stored under a key; each entry carries its own checksum and is re-validated on read."""

    VERSION = "1"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(*parts: str) -> str:
        import hashlib

        digest = hashlib.sha256(ResultCache.VERSION.encode())
        for part in parts:
            digest.update(b"\0" + part.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / "results" / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Finding] | None:
        import hashlib
        import json

        path = self._path(key)
        try:
            raw = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            entry = json.loads(raw)
            body = entry["findings"]
            checksum = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            if entry.get("key") != key or entry.get("checksum") != checksum:
                raise ValueError("checksum mismatch")
            findings = [Finding.model_validate(item) for item in body]
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # corrupt: discard and recompute, never trust
            self.misses += 1
            return None
        self.hits += 1
        return findings

    def put(self, key: str, findings: list[Finding]) -> None:
        import hashlib
        import json

        from truthplane.fsutil import atomic_write

        body = [f.model_dump(mode="json") for f in findings]
        checksum = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        try:
            atomic_write(self._path(key), json.dumps({"key": key, "checksum": checksum, "findings": body}))
        except OSError:
            pass  # a cache that cannot be written only costs time next run
