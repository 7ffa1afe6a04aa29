#!/usr/bin/env bash
# The test command (README, CI): bootstrap, ruff, mypy, security scans (cfn-lint, checkov, bandit), unit
# tests, the fidelity tests (each handler in the environment its Dockerfile builds; those environments
# build in the background from the start and are cached in .localstack/envs for the integration step),
# then integration tests on the embedded local AWS stack. The integration fixture starts LocalStack if
# none runs and stops it at the end; if this script is interrupted, the trap below stops a stack that
# was not running before it started (and the background builds).
# Exit status: non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh || { echo "FAILED: bootstrap" >&2; exit 1; }
bin=.venv/bin
export MAAS_LOCAL_PORT="${MAAS_LOCAL_PORT:-4566}"

running_before=0
if "$bin/maas" local status >/dev/null 2>&1; then running_before=1; fi
background_pids=()
cleanup() {
  for pid in "${background_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$running_before" = 0 ] && "$bin/maas" local status >/dev/null 2>&1; then
    "$bin/maas" local down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=()
step() {  # step NAME COMMAND...; any non-zero exit fails the step, pytest's 5 (no tests collected) too
  local name="$1" rc
  shift
  echo "==> $name: $*"
  "$@"
  rc=$?
  if [ "$rc" -eq 5 ] && [ "$1" = "$bin/pytest" ]; then
    echo "    (pytest collected no tests: a step that tests nothing is a failure)"
  fi
  if [ "$rc" -ne 0 ]; then
    echo "FAILED: $name (exit $rc)"
    failed+=("$name")
  fi
}

wait_for() {  # wait_for PID LOG: the exit status of a command started in the background, its log printed
  local rc=0
  wait "$1" || rc=$?
  cat "$2"
  rm -f "$2"
  return "$rc"
}

# Two builds that are mostly pip downloads and unpacking (I/O) run in the background from the start,
# while the checks and unit tests use the CPUs: the image environments (first used by the fidelity step)
# and .venv-clients (the real tritonclient/KServe clients of the integration tests; the tests would
# otherwise build it themselves). Each is waited for, its log printed, as a step before its first user.
envs_log="$(mktemp)" clients_log="$(mktemp)"
"$bin/maas" local envs >"$envs_log" 2>&1 &
envs_pid=$!
bash scripts/clients.sh >"$clients_log" 2>&1 &
clients_pid=$!
background_pids=("$envs_pid" "$clients_pid")

step "ruff" "$bin/ruff" check .
step "mypy" "$bin/mypy"
step "security scans" bash scripts/security.sh cfn checkov bandit
# two workers (pytest-xdist), one test file each at a time: files share module-level fixtures
step "unit tests" "$bin/pytest" -q -n 2 --dist loadfile tests/unit -m "not integration and not bench"
step "image environments (built in the background)" wait_for "$envs_pid" "$envs_log"
step "fidelity tests" "$bin/pytest" -q tests/fidelity -m fidelity
step "clients venv (built in the background)" wait_for "$clients_pid" "$clients_log"
background_pids=()
step "integration tests" "$bin/pytest" -q tests/integration -m integration

if [ "${#failed[@]}" -ne 0 ]; then
  echo "test.sh: FAILED steps: ${failed[*]}"
  exit 1
fi
echo "test.sh: all steps passed"
