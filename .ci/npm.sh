#!/usr/bin/env bash
# The JavaScript/TypeScript verifiers' tools for the tests: typescript, eslint, @eslint/js, typescript-eslint and the SARIF
# formatter, pinned, installed from the npm registry into one shared prefix. Idempotent: skips when the
# pinned versions are already there. The prefix lies outside the directories the local executor hides
# (/tmp, /root, /var/cache/truthplane), so a test project's node_modules symlink to it also resolves
# inside the sandbox. Tests find it through TRUTHPLANE_NPM_PREFIX (default below).
set -euo pipefail

prefix=${TRUTHPLANE_NPM_PREFIX:-/opt/truthplane/npm}
packages=(typescript@5.9.3 eslint@9.39.1 @eslint/js@9.39.1 typescript-eslint@8.46.0 @microsoft/eslint-formatter-sarif@3.1.0)

if ! command -v npm >/dev/null 2>&1; then
  echo "npm.sh: apt-get install nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

stamp="$prefix/.truthplane-packages"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ] && [ -x "$prefix/node_modules/.bin/eslint" ] \
    && [ -x "$prefix/node_modules/.bin/tsc" ]; then
  echo "npm.sh: ${packages[*]} present in $prefix"
  exit 0
fi

echo "npm.sh: npm install ${packages[*]} into $prefix"
mkdir -p "$prefix"
[ -f "$prefix/package.json" ] || echo '{"name": "truthplane-test-tools", "private": true}' >"$prefix/package.json"
npm install --prefix "$prefix" --no-audit --no-fund --save-exact --loglevel=error "${packages[@]}"
"$prefix/node_modules/.bin/eslint" --version >/dev/null
"$prefix/node_modules/.bin/tsc" --version >/dev/null
echo "${packages[*]}" >"$stamp"
