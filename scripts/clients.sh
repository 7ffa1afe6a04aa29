#!/usr/bin/env bash
# .venv-clients: the real third-party clients (tritonclient.http, the KServe SDK) that
# tests/integration/test_real_clients.py drives against the API. Their own venv, because their pins
# clash with the project's (tritonclient: ml-dtypes<=0.5.4, TensorFlow 2.21 needs 0.6; kserve:
# psutil<6). Idempotent: a stamp of the pinned inputs; rebuilt only when they change. The integration
# tests run this themselves, so a fresh machine (CI) needs no extra step; about 1-4 minutes the first time.
#
#   bash scripts/clients.sh          # create or update .venv-clients
#   CLIENTS_VENV=path PYTHON=python3.11 bash scripts/clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CLIENTS_VENV:-.venv-clients}
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}  # same interpreter as .venv when there is one
stamp="$venv/.maas-clients"
want="$(cat scripts/clients/requirements.txt scripts/clients/constraints.txt | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "clients: creating $venv (tritonclient, kserve; first time only)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
constraints=(-c scripts/clients/constraints.txt)
[ "${CLIENTS_RESOLVE:-0}" = 1 ] && constraints=()  # to regenerate the pins
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r scripts/clients/requirements.txt \
  "${constraints[@]}"
echo "$want" > "$stamp"
