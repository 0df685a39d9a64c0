#!/usr/bin/env bash
# The project's own checks, from .pre-commit-config.yaml: ruff, mypy over truthplane/, import-linter.
# pre-commit lives in a virtualenv of its own (import-linter needs a newer click than semgrep allows).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUTHPLANE_LINT_VENV:-/opt/truthplane/lint}
if [ ! -x "$venv/bin/pre-commit" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pre-commit==4.0.1
fi
export PRE_COMMIT_HOME=${PRE_COMMIT_HOME:-/opt/truthplane/pre-commit}
# a checkout that is not a git work tree (an exported archive) is checked file by file all the same
"$venv/bin/pre-commit" run --all-files --show-diff-on-failure --color never
