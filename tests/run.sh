#!/usr/bin/env bash
# `npm test`: every tests/*.test.ts, each file in its own process, in two phases.
#
# Most files spend much of their time waiting (child processes starting, sockets, the database), so
# they run two at a time. The files listed in SERIAL own the machine and run one at a time after
# them: they measure or depend on timing under their own load (benchmarks, load test, the online
# loop's low-priority trainer child, rate limits), drive Chromium, or stop the shared PostgreSQL
# cluster (a database test running beside that one would see its server vanish).
#
# With file arguments (`npm test -- tests/db.test.ts`) only those run, one at a time.
set -uo pipefail
cd "$(dirname "$0")/.."

run() { node --import tsx --test --test-concurrency="$1" "${@:2}"; }

if [ $# -gt 0 ]; then
  run 1 "$@"
  exit $?
fi

SERIAL=(
  tests/online-loop.test.ts
  tests/bench-cli.test.ts
  tests/server-limits.test.ts
  tests/fault-postgres-restart.test.ts
  tests/web-chat.test.ts
  tests/web-client.test.ts
)

shared=()
for f in tests/*.test.ts; do
  [[ " ${SERIAL[*]} " == *" $f "* ]] || shared+=("$f")
done

run 2 "${shared[@]}"
shared_rc=$?
run 1 "${SERIAL[@]}"
serial_rc=$?

if [ $shared_rc -ne 0 ] || [ $serial_rc -ne 0 ]; then
  echo "npm test: failed (files run two at a time: exit $shared_rc; files run alone: exit $serial_rc)" >&2
  exit 1
fi
echo "npm test: all ${#shared[@]} + ${#SERIAL[@]} test files passed"
