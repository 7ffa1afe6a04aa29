#!/usr/bin/env bash
# Idempotent setup: .venv with Python >= 3.11 and the project installed editable with the dev extra, at the
# tested versions in scripts/constraints.txt.
# Re-running it is a no-op unless pyproject.toml or the constraints changed. (LocalStack's own venv is made by `maas local up`.)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.maas-bootstrap"
want="$(cat pyproject.toml scripts/constraints.txt scripts/localstack/pyproject.toml | sha256sum | cut -d' ' -f1)"

ok_python() {  # usable: Python >= 3.11 with venv
  "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
  local c root
  for c in "${MAAS_PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && ok_python "$(command -v "$c")" && { command -v "$c"; return; }
  done
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for c in "$root"/versions/3.1[1-3]*/bin/python3; do
    [ -x "$c" ] && ok_python "$c" && { echo "$c"; return; }
  done
  return 1
}

if [ -x "$venv/bin/python" ] && ok_python "$venv/bin/python"; then
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
  fi
else
  python="$(find_python)" || {
    echo "bootstrap: need Python 3.11 or newer (with venv); install one, e.g. 'pyenv install 3.11'," \
         "or set MAAS_PYTHON=/path/to/python3.11" >&2
    exit 1
  }
  echo "bootstrap: creating $venv with $python" >&2
  "$python" -m venv "$venv"
fi

echo "bootstrap: installing the project (pip install -e '.[dev]')" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -e '.[dev]' -c scripts/constraints.txt
# The LocalStack executor's sandbox (a Lambda execution environment as a local process, standard library
# only) also runs `maas local invoke` and the fidelity tests: editable, no dependencies.
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet --no-deps -e scripts/localstack
echo "$want" > "$stamp"
