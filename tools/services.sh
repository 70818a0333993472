#!/usr/bin/env bash
# Services the tests talk to: RabbitMQ, Redis and a Kafka test broker.
#
#   eval "$(tools/services.sh up)"   start what is missing, print the env
#   eval "$(tools/services.sh env)"  print the env of what already runs
#   tools/services.sh status         say what is reachable
#   tools/services.sh down           stop the Kafka test broker
#
# `up` is safe to run again: it reuses whatever already listens. RabbitMQ
# (127.0.0.1:5672) and Redis (127.0.0.1:6379) are started when installed but
# stopped, and installed through apt-get when missing and running as root.
# The Kafka test broker is librdkafka's mock cluster (tools/kafka-mock); it is
# built when needed and runs in the background until `down`. Setting
# KAFKA_BROKERS, AMQP_URL or REDIS_URL beforehand means "use that one" and the
# script leaves that service alone.
#
# stdout carries only `export NAME=value` lines, so the output can be eval'ed;
# progress and errors go to stderr. `up` exits 1 when a service is still
# unreachable at the end, after printing what it could.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mock_dir="$root/tools/kafka-mock"
state="$mock_dir/build"
broker_bin="$state/broker"
pid_file="$state/broker.pid"
addr_file="$state/broker.addr"
log_file="$state/broker.log"

default_amqp='amqp://guest:guest@127.0.0.1:5672'
default_redis='redis://127.0.0.1:6379'

say() { printf 'services: %s\n' "$*" >&2; }

# Reachability by a plain TCP connect, with bash's /dev/tcp so nothing beyond
# bash and coreutils is needed.
port_open() {
  local host=$1 port=$2
  if command -v timeout >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # expanded by the inner bash, from $0 and $1
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

wait_port() {
  local host=$1 port=$2 seconds=$3 waited=0
  while ! port_open "$host" "$port"; do
    if ((waited >= seconds * 4)); then return 1; fi
    sleep 0.25
    waited=$((waited + 1))
  done
}

# Daemons run by root often live in sbin, which a user's PATH may lack.
find_cmd() {
  local dir
  if command -v "$1" 2>/dev/null; then return 0; fi
  for dir in /usr/sbin /usr/local/sbin /sbin; do
    if [[ -x $dir/$1 ]]; then
      printf '%s\n' "$dir/$1"
      return 0
    fi
  done
  return 1
}

can_apt() { [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; }

# The package index is refreshed only when an install fails: on a machine
# whose index is current this saves a slow round trip.
apt_install() {
  say "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@" </dev/null >&2; then
    say "install failed; running apt-get update and retrying"
    apt-get update </dev/null >&2
    apt-get install -y --no-install-recommends "$@" </dev/null >&2
  fi
}

# Daemons started here get their output in a file and no copy of the lock
# descriptor: an inherited pipe would keep `$(tools/services.sh up)` waiting
# for as long as the daemon lives, and an inherited lock would block the next
# `up` the same way.
ensure_rabbitmq() {
  if [[ -n ${AMQP_URL:-} && $AMQP_URL != "$default_amqp" ]]; then
    say "AMQP_URL is set; leaving RabbitMQ alone"
    return 0
  fi
  if port_open 127.0.0.1 5672; then
    say "RabbitMQ is up on 127.0.0.1:5672"
    return 0
  fi
  local server ctl
  if ! server=$(find_cmd rabbitmq-server); then
    if can_apt; then
      apt_install rabbitmq-server
      # The package may have started it already (where init scripts run).
      if wait_port 127.0.0.1 5672 5; then
        say "RabbitMQ is up on 127.0.0.1:5672"
        return 0
      fi
      server=$(find_cmd rabbitmq-server) || return 1
    else
      say "RabbitMQ is not installed; install it (Debian: sudo apt-get install rabbitmq-server) or run: sudo $0 up"
      return 1
    fi
  fi
  say "starting RabbitMQ ($server -detached), this takes a few seconds"
  # A node that is already booting refuses a second start and the wait below
  # covers that, so for root the exit status is not the verdict. Anyone else
  # is refused by Debian's wrapper; waiting a minute for that helps nobody.
  local rc=0
  "$server" -detached >"$state/rabbitmq-start.log" 2>&1 </dev/null 9>&- || rc=$?
  if ((rc != 0)) && [[ $(id -u) != 0 ]]; then
    say "could not start RabbitMQ as $(id -un); run: sudo $server -detached (or sudo $0 up)"
    tail -n 5 "$state/rabbitmq-start.log" >&2 || true
    return 1
  fi
  if ! wait_port 127.0.0.1 5672 60; then
    say "RabbitMQ did not open 127.0.0.1:5672 within 60 s; $state/rabbitmq-start.log says:"
    tail -n 20 "$state/rabbitmq-start.log" >&2 || true
    return 1
  fi
  # The AMQP listener can open a moment before every plugin has booted.
  if ctl=$(find_cmd rabbitmqctl); then
    timeout 60 "$ctl" await_startup >/dev/null 2>&1 </dev/null 9>&- ||
      say "rabbitmqctl await_startup did not confirm; carrying on since the port is open"
  fi
  say "RabbitMQ is up on 127.0.0.1:5672"
}

ensure_redis() {
  if [[ -n ${REDIS_URL:-} && $REDIS_URL != "$default_redis" ]]; then
    say "REDIS_URL is set; leaving Redis alone"
    return 0
  fi
  if port_open 127.0.0.1 6379; then
    say "Redis is up on 127.0.0.1:6379"
    return 0
  fi
  local server
  if ! server=$(find_cmd redis-server); then
    if can_apt; then
      apt_install redis-server
      if wait_port 127.0.0.1 6379 5; then
        say "Redis is up on 127.0.0.1:6379"
        return 0
      fi
      server=$(find_cmd redis-server) || return 1
    else
      say "Redis is not installed; install it (Debian: sudo apt-get install redis-server) or run: sudo $0 up"
      return 1
    fi
  fi
  say "starting Redis"
  # Tests need no persistence: no snapshots, no append-only file. "-::1"
  # binds IPv6 loopback only where it exists.
  "$server" --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    >"$state/redis-start.log" 2>&1 </dev/null 9>&- || true
  if ! wait_port 127.0.0.1 6379 15; then
    say "Redis did not open 127.0.0.1:6379 within 15 s; $state/redis-start.log says:"
    tail -n 20 "$state/redis-start.log" >&2 || true
    return 1
  fi
  say "Redis is up on 127.0.0.1:6379"
}

# The pid in the file counts only while it still is our broker: after a
# reboot the number may belong to anything.
broker_pid() {
  local pid cmd
  [[ -s $pid_file ]] || return 1
  pid=$(<"$pid_file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  else
    cmd=$(ps -p "$pid" -o command= 2>/dev/null) || return 1
  fi
  [[ $cmd == "$broker_bin"* ]] || return 1
  printf '%s\n' "$pid"
}

# Prints the running broker's address, if it answers.
broker_addr() {
  local addr first
  broker_pid >/dev/null || return 1
  [[ -s $addr_file ]] || return 1
  addr=$(head -n 1 "$addr_file")
  first=${addr%%,*}
  port_open "${first%:*}" "${first##*:}" || return 1
  printf '%s\n' "$addr"
}

# KAFKA_BROKERS is often a leftover from an earlier eval whose broker has
# since stopped, so a set value is still checked.
kafka_env_answers() {
  local first=${KAFKA_BROKERS%%,*}
  if port_open "${first%:*}" "${first##*:}"; then return 0; fi
  say "KAFKA_BROKERS=$KAFKA_BROKERS does not answer; unset it to use the test broker"
  return 1
}

build_deps_present() {
  command -v gcc >/dev/null 2>&1 &&
    command -v pkg-config >/dev/null 2>&1 &&
    pkg-config --exists rdkafka 2>/dev/null &&
    [[ -f $(pkg-config --variable=includedir rdkafka 2>/dev/null)/librdkafka/rdkafka_mock.h ]]
}

build_broker() {
  if [[ -x $broker_bin && ! $mock_dir/broker.c -nt $broker_bin ]]; then
    return 0
  fi
  if ! build_deps_present; then
    if can_apt; then
      # libc6-dev is only a Recommends of gcc, and the install skips those.
      apt_install librdkafka-dev gcc libc6-dev pkg-config
    else
      say "building the Kafka test broker needs gcc, pkg-config and librdkafka-dev"
      say "(Debian: sudo apt-get install gcc pkg-config librdkafka-dev), or set KAFKA_BROKERS to a real Kafka"
      return 1
    fi
  fi
  say "building the Kafka test broker"
  bash "$mock_dir/build.sh" >&2
}

ensure_broker() {
  local addr pid i
  if addr=$(broker_addr); then
    say "Kafka test broker is up on $addr (pid $(broker_pid))"
    if [[ $mock_dir/broker.c -nt $broker_bin ]]; then
      say "note: broker.c changed since the build; '$0 down' then '$0 up' to use the new one"
    fi
    KAFKA_BROKERS=$addr
    return 0
  fi
  # A leftover that does not answer is of no use to anyone.
  stop_broker
  build_broker || return 1

  rm -f "$addr_file"
  printf -- '--- %s starting\n' "$(date '+%F %T')" >>"$log_file"
  # Its own session, so a Ctrl-C meant for a test run in the same terminal
  # does not take the broker down with it; stopping is `down`'s job.
  if command -v setsid >/dev/null 2>&1; then
    setsid "$broker_bin" >"$addr_file" 2>>"$log_file" </dev/null 9>&- &
  else
    "$broker_bin" >"$addr_file" 2>>"$log_file" </dev/null 9>&- &
  fi
  pid=$!
  printf '%s\n' "$pid" >"$pid_file"

  # It normally prints its address within a few milliseconds.
  for ((i = 0; i < 200; i++)); do
    if [[ -s $addr_file ]] && addr=$(head -n 1 "$addr_file") && [[ -n $addr ]]; then
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if [[ -z ${addr:-} ]] || ! kill -0 "$pid" 2>/dev/null; then
    say "the Kafka test broker did not start; $log_file ends with:"
    tail -n 20 "$log_file" >&2 || true
    stop_broker
    return 1
  fi
  say "Kafka test broker started on $addr (pid $pid, log $log_file)"
  KAFKA_BROKERS=$addr
  broker_started=1
}

stop_broker() {
  local pid i
  if pid=$(broker_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "broker pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped the Kafka test broker (pid $pid)"
  fi
  rm -f "$pid_file" "$addr_file"
}

print_env() {
  printf 'export AMQP_URL=%q\n' "${AMQP_URL:-$default_amqp}"
  printf 'export REDIS_URL=%q\n' "${REDIS_URL:-$default_redis}"
  if [[ -n ${KAFKA_BROKERS:-} ]]; then
    printf 'export KAFKA_BROKERS=%q\n' "$KAFKA_BROKERS"
  fi
  # Lets a caller such as tools/test.sh stop the broker only if it was the
  # one that started it; printed every time so a stale value is overwritten.
  printf 'export CYB_KAFKA_MOCK_STARTED=%s\n' "$broker_started"
}

# One `up` at a time: two at once would each start a broker.
take_lock() {
  mkdir -p "$state"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$state/services.lock"
    flock 9
  fi
}

broker_started=0

# The @cyb/cli report test renders HTML in headless Chromium (CHROMIUM_PATH overrides the path).
ensure_chromium() {
  local path=${CHROMIUM_PATH:-/usr/bin/chromium}
  [[ -x $path ]] && return 0
  if can_apt; then
    apt_install chromium
    [[ -x $path ]] && return 0
  fi
  say "Chromium is missing at $path; install it (Debian: sudo apt-get install chromium) or set CHROMIUM_PATH"
  return 1
}

cmd_up() {
  local failed=0
  take_lock
  ensure_rabbitmq || failed=1
  ensure_redis || failed=1
  ensure_chromium || failed=1
  if [[ -n ${KAFKA_BROKERS:-} ]]; then
    say "KAFKA_BROKERS is set ($KAFKA_BROKERS); not starting the test broker"
    kafka_env_answers || failed=1
  else
    ensure_broker || failed=1
  fi
  print_env
  if ((failed)); then
    say "some services are not reachable (see above)"
    return 1
  fi
}

cmd_env() {
  local failed=0 addr
  if [[ -n ${KAFKA_BROKERS:-} ]]; then
    kafka_env_answers || failed=1
  else
    if addr=$(broker_addr); then
      KAFKA_BROKERS=$addr
    else
      say "the Kafka test broker is not running; start it with: $0 up"
      failed=1
    fi
  fi
  print_env
  return "$failed"
}

cmd_status() {
  local failed=0 addr
  if port_open 127.0.0.1 5672; then say "RabbitMQ: up on 127.0.0.1:5672"; else say "RabbitMQ: down"; failed=1; fi
  if port_open 127.0.0.1 6379; then say "Redis: up on 127.0.0.1:6379"; else say "Redis: down"; failed=1; fi
  if [[ -n ${KAFKA_BROKERS:-} ]]; then
    if kafka_env_answers; then say "Kafka: KAFKA_BROKERS=$KAFKA_BROKERS answers"; else failed=1; fi
  fi
  if addr=$(broker_addr); then
    say "Kafka test broker: up on $addr (pid $(broker_pid))"
  elif [[ -n ${KAFKA_BROKERS:-} ]]; then
    say "Kafka test broker: not running (KAFKA_BROKERS is used instead)"
  else
    say "Kafka test broker: down"
    failed=1
  fi
  return "$failed"
}

cmd_down() {
  take_lock
  stop_broker
}

case "${1:-}" in
  up) cmd_up ;;
  env) cmd_env ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *)
    say "usage: $0 up|env|status|down"
    exit 2
    ;;
esac
