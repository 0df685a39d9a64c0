#!/usr/bin/env bash
# action.yml's install step: truthplane from the action's own checkout (so the action and the tool are one
# version), or any pip requirement given as `install`, or nothing when it is empty.
set -euo pipefail
spec="${TRUTHPLANE_INSTALL-action}"  # empty (not unset): install nothing
if [ -z "$spec" ]; then
  echo "truthplane: install skipped ($(command -v truthplane || echo 'not on PATH'))"
  exit 0
fi
if [ "$spec" = "action" ]; then
  spec="$GITHUB_ACTION_PATH"
fi
python -m pip install --quiet "$spec"
truthplane --version
