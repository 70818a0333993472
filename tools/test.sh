#!/usr/bin/env bash
# What `npm test` runs: services up, build, lint, then every package's tests.
#
#   npm test                          everything
#   CYB_TEST_FILTER=kafka npm test    build and test @cyb/kafka only (plus
#                                     what it depends on), lint everything
#
# Packages run one after another (--concurrency=1): they share RabbitMQ, Redis
# and the Kafka test broker, and the broker's group joins are slow enough that
# parallel packages would time each other out.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TURBO_TELEMETRY_DISABLED=1

# Capture first, eval second: a failing `up` still reports what it started,
# so the broker it may have launched can be stopped on the way out.
services_status=0
services_env=$(bash tools/services.sh up) || services_status=$?
eval "$services_env"

if [[ ${CYB_KAFKA_MOCK_STARTED:-0} == 1 ]]; then
  # Started here, so stopped here; a broker that was already running belongs
  # to someone else (another shell, another run) and stays.
  trap 'bash tools/services.sh down' EXIT
  # Turn Ctrl-C and kill into a normal exit so the EXIT trap runs.
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi

if ((services_status != 0)); then
  echo "test: services are not ready (see above); see tools/services.sh" >&2
  exit "$services_status"
fi

filter=()
if [[ -n ${CYB_TEST_FILTER:-} ]]; then
  pkg=${CYB_TEST_FILTER#@cyb/}
  filter=("--filter=@cyb/$pkg")
  echo "test: only @cyb/$pkg" >&2
fi

echo "test: Node.js $(node --version)" >&2

# The ${a[@]+...} form keeps an empty array legal under `set -u` in old bash.
npx turbo run build ${filter[@]+"${filter[@]}"}
npx eslint .
npx turbo run test --concurrency=1 ${filter[@]+"${filter[@]}"}
