#!/usr/bin/env bash
# Benchmarks: each figure beside the naive baseline measured in the same run (`maas bench`).
#
#   scripts/bench.sh                  full run of load, predict, batch, explain -> bench-results/bench.json
#   scripts/bench.sh --quick          CI-sized run (each area well under a minute)
#   scripts/bench.sh --update-readme  also regenerate the README's table (<!-- bench:start/end -->)
#   scripts/bench.sh --http           also the bounded HTTP load test on the embedded local stack
#                                     (started with `maas local up` if it is not running, stopped after)
#   scripts/bench.sh predict batch    only these areas
#
# Exit status: non-zero when an area fails or the load test has an error; a missed target is reported
# in the table (add --fail-on-miss to make it fail the run).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
bin=.venv/bin

quick=() readme=() strict=() http=0 areas=()
for arg in "$@"; do
  case $arg in
    --quick) quick=(--quick) ;;
    --update-readme) readme=(--update-readme) ;;
    --fail-on-miss) strict=(--fail-on-miss) ;;
    --http) http=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    load|predict|batch|explain|all) areas+=("$arg") ;;
    *) echo "bench.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
[ ${#areas[@]} -eq 0 ] && areas=(all)
out=${BENCH_JSON:-bench-results/bench.json}
mkdir -p "$(dirname "$out")"

rc=0
if [ ${#areas[@]} -eq 1 ]; then
  "$bin/maas" bench "${areas[0]}" "${quick[@]}" "${strict[@]}" --json "$out" "${readme[@]}" || rc=1
else
  for area in "${areas[@]}"; do  # one JSON per area; the README keeps the rows of areas not rerun
    "$bin/maas" bench "$area" "${quick[@]}" "${strict[@]}" --json "${out%.json}-$area.json" "${readme[@]}" || rc=1
  done
fi

if [ "$http" = 1 ]; then
  started=0
  if ! "$bin/maas" local status >/dev/null 2>&1; then
    "$bin/maas" local up >/dev/null || { echo "bench.sh: maas local up failed" >&2; exit 1; }
    started=1
  fi
  "$bin/maas" bench http "${quick[@]}" --json "${out%.json}-http.json" "${readme[@]}" || rc=1
  [ "$started" = 1 ] && "$bin/maas" local down >/dev/null 2>&1
fi
exit $rc
