#!/usr/bin/env bash
# Builds the Kafka test broker into tools/kafka-mock/build/broker.
# Needs gcc, pkg-config and librdkafka's headers (Debian: librdkafka-dev).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$here/build"
# shellcheck disable=SC2046 # pkg-config prints several flags meant to split
gcc -std=gnu11 -O2 -Wall -Wextra -o "$here/build/broker.tmp" "$here/broker.c" \
  $(pkg-config --cflags --libs rdkafka) -lpthread
# Rename into place so a concurrent reader never runs a half-written binary.
mv -f "$here/build/broker.tmp" "$here/build/broker"
