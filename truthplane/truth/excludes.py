"""Which paths a scan leaves out: the configured exclude patterns, matched against repository-relative paths.

A module of its own: a gate starts its tools on the change (truthplane.truth.ahead) before the rest of what
reads a tree (truthplane.truth.sources) is imported.
"""

from __future__ import annotations


class Excluder:
    """Exclude patterns compiled once: a bare name or a glob without '/' matches any path component, a
    pattern with '/' matches the path (or a directory above it). A verdict on a directory is remembered,
    so a path costs a dict lookup for its directory and one check of its own name."""

    def __init__(self, patterns: list[str]) -> None:
        import re
        from fnmatch import translate

        names, name_globs, path_globs = set(), [], []
        for raw in patterns:
            pattern = raw.rstrip("/")
            if "/" in pattern:
                path_globs += [translate(pattern), translate(pattern + "/*")]
            elif any(ch in pattern for ch in "*?["):
                name_globs.append(translate(pattern))
            elif pattern:
                names.add(pattern)
        self._names = frozenset(names)
        self._name_re = re.compile("|".join(name_globs)) if name_globs else None
        self._path_re = re.compile("|".join(path_globs)) if path_globs else None
        self._dirs: dict[str, bool] = {}
        self._seen_names: dict[str, bool] = {}  # a large tree repeats its file names (__init__.py, tests.py...)

    def _name(self, name: str) -> bool:
        hit = self._seen_names.get(name)
        if hit is None:
            hit = self._seen_names[name] = name in self._names or (
                self._name_re is not None and self._name_re.match(name) is not None)
        return hit

    def _path(self, path: str) -> bool:
        return self._path_re is not None and self._path_re.match(path) is not None

    def _directory(self, directory: str) -> bool:
        hit = self._dirs.get(directory)
        if hit is None:
            parent, _, name = directory.rpartition("/")
            hit = (bool(parent) and self._directory(parent)) or self._name(name) or self._path(directory)
            self._dirs[directory] = hit
        return hit

    def __call__(self, path: str) -> bool:
        directory, _, name = path.rpartition("/")
        return (bool(directory) and self._directory(directory)) or self._name(name) or self._path(path)
