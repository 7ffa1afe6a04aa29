#!/usr/bin/env bash
# Fresh machine -> the whole product running on the embedded local stack (no Docker, no AWS account).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/maas demo "$@"
