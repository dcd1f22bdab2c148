#!/usr/bin/env bash
# The local stack used by fleet's tests, demo and benchmarks: one real Apache Kafka
# broker (KRaft, single node acting as broker + controller) and one redis-server,
# each on a free loopback port. See docs/stack.md.
#
# Usage:
#   scripts/stack.sh fetch        download/cache the pinned Kafka jars (idempotent)
#   scripts/stack.sh up DIR       start (or reuse) the stack; writes DIR/stack.env
#       [--sasl-plain USER:PASS]  also a SASL_PLAINTEXT listener (PLAIN) for USER
#       [--redis-password PASS]   redis-server requires PASS; DIR/stack.auth.env (mode 600)
#                                 then holds the client settings (scripts/stack-auth.sh)
#       [--brokers N]             N = 1 (default) or 3: a 3-node KRaft cluster, replication
#                                 factor 3, min.insync.replicas 2 (scripts/stack-kafka.sh)
#   scripts/stack.sh broker-pid DIR ID   pid of Kafka node ID (1..N): for kill -9 in tests
#   scripts/stack.sh node-kill DIR ID / node-start DIR ID   kill -9 of cluster node ID; start it
#                                 again (same data, same ports), returning when it answers
#   scripts/stack.sh down DIR     stop both and wait until they are gone
#   scripts/stack.sh status DIR   exit 0 iff the stack in DIR is up and answering
#   scripts/stack.sh kafka-stop DIR / kafka-start DIR   stop the broker, start it again (same
#                                 data, same ports): broker outages for tests
#   scripts/stack.sh redis-stop DIR / redis-start DIR / redis-restart DIR   SHUTDOWN
#                                 redis-server (the append-only file keeps its data), start it
#                                 again on the same port
#   scripts/stack.sh redis-kill DIR     kill -9 redis-server (no SHUTDOWN: the append-only file,
#                                 fsynced every second, may lose its last second); redis-start
#                                 brings it back
#   scripts/stack.sh topics DIR ARGS...  kafka-topics against it, e.g.
#                                 topics DIR --create --topic T --partitions 8
#   scripts/stack.sh groups DIR ARGS...  kafka-consumer-groups, e.g.
#                                 groups DIR --describe --all-groups
#
# Environment:
#   FLEET_BUILD_DIR          build tree holding the Kafka cache (default: build)
#   FLEET_KAFKA_PARTITIONS   num.partitions for auto-created topics (default 4)
#   FLEET_KAFKA_HEAP         JVM heap options (default "-Xms256m -Xmx512m")
#   FLEET_STACK_TIMEOUT      seconds to wait for readiness / shutdown (default 120)
set -euo pipefail

KAFKA_VERSION=3.9.1          # org.apache.kafka:kafka_2.13, pinned
SCALA_VERSION=2.13
SLF4J_VERSION=1.7.36         # slf4j-reload4j binding, as Kafka's own distribution ships
RELOAD4J_VERSION=1.2.25
DEP_PLUGIN_VERSION=3.6.1     # org.apache.maven.plugins:maven-dependency-plugin

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${FLEET_BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
KAFKA_HOME="$BUILD_DIR/third_party/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
STAMP="$KAFKA_HOME/.fetched"
STAMP_TEXT="kafka_$SCALA_VERSION-$KAFKA_VERSION kafka-tools-$KAFKA_VERSION slf4j-reload4j-$SLF4J_VERSION reload4j-$RELOAD4J_VERSION"
TIMEOUT=${FLEET_STACK_TIMEOUT:-120}

log() { echo "stack: $*" >&2; }
die() { echo "stack: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
# shellcheck source=scripts/stack-auth.sh
. "$ROOT/scripts/stack-auth.sh"
# shellcheck source=scripts/stack-kafka.sh
. "$ROOT/scripts/stack-kafka.sh"

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --------------------------------------------------------------------------- fetch
fetch() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
    return 0
  fi
  command -v java >/dev/null || die "java not found (scripts/setup installs default-jdk-headless)"
  command -v mvn >/dev/null || die "mvn not found (scripts/setup installs maven)"
  mkdir -p "$KAFKA_HOME"
  # Serialize concurrent fetches (e.g. parallel ctest + setup).
  exec 9>"$KAFKA_HOME/.lock"
  flock -w 600 9 || die "timed out waiting for another fetch ($KAFKA_HOME/.lock)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
    exec 9>&-; return 0
  fi
  log "fetching Apache Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) from Maven Central into $KAFKA_LIBS"
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/stack.sh fetch: the runtime classpath of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fleet.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- The command-line tools (TopicCommand, ConsumerGroupCommand); their other
         dependencies (Connect runtime, Jetty, ...) are not needed for those two. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>
    </dependency>
    <!-- kafka_2.13 depends only on slf4j-api; the binary distribution adds this binding. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>$RELOAD4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEP_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
  local tmp="$KAFKA_HOME/libs.tmp" mlog="$KAFKA_HOME/fetch.log"
  rm -rf "$tmp"
  if ! mvn -B -f "$KAFKA_HOME/pom.xml" \
        "org.apache.maven.plugins:maven-dependency-plugin:$DEP_PLUGIN_VERSION:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mlog" 2>&1; then
    tail -n 40 "$mlog" >&2
    die "mvn dependency:copy-dependencies failed (full log: $mlog)"
  fi
  [ -f "$tmp/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" ] || die "kafka jar missing after fetch (log: $mlog)"
  [ -n "$(ls "$tmp"/scala-library-*.jar 2>/dev/null)" ] || die "scala-library missing after fetch"
  cat >"$KAFKA_HOME/tools-log4j.properties" <<EOF
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  echo "$STAMP_TEXT" >"$STAMP"
  log "cached $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
  exec 9>&-
}

# --------------------------------------------------------------------------- helpers
# Prints N distinct free loopback TCP ports. All sockets are held open until every
# port is chosen, so the N are distinct; a race with another process is handled by
# the retry in `up`. The ports lie below the kernel's ephemeral range: a port in it,
# freed while a test stops the broker or redis-server, can be taken meanwhile by any
# outgoing connection's local end, and the restart on the same port would then fail.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
lo, hi = (10000, low - 1) if low > 12000 else (low, 65535)
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", random.randint(lo, hi)))
        socks.append(s)
    except OSError:
        s.close()
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

port_open() {  # port_open PORT -> 0 if something accepts on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_is PIDFILE PATTERN -> prints the pid if it is alive and its cmdline matches
pid_is() {
  local f=$1 pat=$2 pid cmd
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  alive "$pid" || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmd" == *"$pat"* ]] || return 1
  echo "$pid"
}

env_get() {  # env_get FILE KEY
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

redis_ok() { [ "$(redis_cli_auth "$2" -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = "PONG" ]; }  # PORT DIR
stack_answering() {  # stack_answering DIR
  local dir=$1 env="$1/stack.env" kp rp sp
  [ -f "$env" ] || return 1
  kp=$(env_get "$env" FLEET_KAFKA_BROKERS)
  if [[ "$kp" == *,* ]]; then  # a cluster (--brokers N)
    pid_is "$dir/redis.pid" redis-server >/dev/null || return 1
    rp=$(env_get "$env" FLEET_REDIS_URL); rp=${rp##*:}; rp=${rp%%/*}
    redis_ok "$rp" "$dir" && cluster_answering "$dir" "$kp"
    return
  fi
  pid_is "$dir/kafka.pid" kafka.Kafka >/dev/null || return 1
  pid_is "$dir/redis.pid" redis-server >/dev/null || return 1
  kp=${kp##*:}
  rp=$(env_get "$env" FLEET_REDIS_URL); rp=${rp##*:}; rp=${rp%%/*}
  [ -n "$kp" ] && [ -n "$rp" ] || return 1
  sp=$(env_get "$env" FLEET_KAFKA_SASL_BROKERS); sp=${sp##*:}
  redis_ok "$rp" "$dir" && kafka_ok "$kp" && { [ -z "$sp" ] || sasl_ok "$dir" "$sp"; }
}

abs_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# --------------------------------------------------------------------------- redis
start_redis() {  # start_redis DIR PORT: a fresh redis-server
  local dir=$1 port=$2
  rm -rf "$dir/redis" "$dir/redis.pid"
  mkdir -p "$dir/redis"
  # The password is read from a mode-600 file, never from the command line.
  (umask 077; if [ -n "$REDIS_PASS" ]; then echo "requirepass \"$REDIS_PASS\""; fi >"$dir/redis/redis.conf")
  launch_redis "$dir" "$port"
}

# launch_redis DIR PORT: redis-server over what DIR/redis holds. The append-only file is on
# (fsync every second; SHUTDOWN writes it out), so a restart keeps the fleet's state.
launch_redis() {
  local dir=$1 port=$2 deadline
  redis-server "$dir/redis/redis.conf" --port "$port" --bind 127.0.0.1 --save '' --appendonly yes \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis/redis.log" \
    --dir "$dir/redis" </dev/null >/dev/null 2>&1 8>&- 9>&- \
    || { tail -n 20 "$dir/redis/redis.log" >&2 2>/dev/null; return 1; }
  deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
  until redis_ok "$port" "$dir"; do
    if [ "$(now_ms)" -gt "$deadline" ] || { [ -s "$dir/redis.pid" ] && ! pid_is "$dir/redis.pid" redis-server >/dev/null; } \
       || grep -q "Address already in use\|Could not create server TCP" "$dir/redis/redis.log" 2>/dev/null; then
      grep -q "Address already in use" "$dir/redis/redis.log" 2>/dev/null && PORT_CONFLICT=1
      log "redis-server did not answer on 127.0.0.1:$port; tail of $dir/redis/redis.log:"
      tail -n 20 "$dir/redis/redis.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.05
  done
}

# alive PID: running (a zombie whose parent has not reaped it yet counts as gone;
# a daemon reparented to a container's init may stay one for a while).
alive() {
  local st
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL and wait.
stop_pid() {
  local pid=$1 secs=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$(( $(now_ms) + secs * 1000 ))
  while alive "$pid"; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      log "pid $pid still alive after ${secs}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$(( $(now_ms) + 10000 ))
      while alive "$pid"; do
        [ "$(now_ms)" -gt "$deadline" ] && die "pid $pid survived SIGKILL"
        sleep 0.05
      done
      return 0
    fi
    sleep 0.05
  done
}

wait_port_closed() {  # PORT SECONDS
  local deadline=$(( $(now_ms) + $2 * 1000 ))
  while port_open "$1"; do
    [ "$(now_ms)" -gt "$deadline" ] && die "port $1 still open after ${2}s"
    sleep 0.05
  done
}

# --------------------------------------------------------------------------- up / down
up() {
  local dir bport cport rport sport attempt t0
  dir=$(abs_dir "$1")
  exec 8>"$dir/.stack.lock"
  flock -w "$TIMEOUT" 8 || die "another 'up'/'down' holds $dir/.stack.lock"
  if auth_options_match "$dir" && [ "$(stack_nodes "$dir")" = "$KAFKA_NODES" ] && stack_answering "$dir"; then
    log "already up in $dir (reusing)"
    cat "$dir/stack.env"
    return 0
  fi
  # Something half-up or stale: stop whatever of ours is still there.
  down_locked "$dir" quiet
  command -v redis-server >/dev/null || die "redis-server not found (scripts/setup installs it)"
  command -v kcat >/dev/null || die "kcat not found (scripts/setup installs it)"
  fetch
  if [ "$KAFKA_NODES" -gt 1 ]; then up_cluster "$dir"; return; fi
  t0=$(now_ms)
  for attempt in 1 2 3; do
    PORT_CONFLICT=0
    read -r bport cport rport sport < <(free_ports 4)
    write_auth_env "$dir" "$sport"
    if start_redis "$dir" "$rport"; then
      if start_kafka "$dir" "$bport" "$cport" "$sport"; then
        break
      fi
    fi
    down_locked "$dir" quiet
    { [ "$PORT_CONFLICT" -eq 1 ] && [ "$attempt" -lt 3 ]; } || die "could not start the stack in $dir (logs: $dir/kafka/server.log, $dir/redis/redis.log)"
    log "start attempt $attempt lost a port race; retrying with new ports"
  done
  cat >"$dir/stack.env.tmp" <<EOF
FLEET_KAFKA_BROKERS=127.0.0.1:$bport
FLEET_REDIS_URL=redis://127.0.0.1:$rport/0
FLEET_KAFKA_CONTROLLER=127.0.0.1:$cport
FLEET_KAFKA_VERSION=$KAFKA_VERSION
EOF
  [ -n "$SASL_USER" ] && echo "FLEET_KAFKA_SASL_BROKERS=127.0.0.1:$sport" >>"$dir/stack.env.tmp"
  mv "$dir/stack.env.tmp" "$dir/stack.env"
  log "up in $dir: kafka $KAFKA_VERSION on 127.0.0.1:$bport (ready ${KAFKA_START_MS} ms after launch)," \
      "redis on 127.0.0.1:$rport; total $(( $(now_ms) - t0 )) ms"
  echo "$(date -Is) up kafka_start_ms=$KAFKA_START_MS broker=127.0.0.1:$bport redis=127.0.0.1:$rport" \
       "${SASL_USER:+sasl=127.0.0.1:$sport}${REDIS_PASS:+ redis_auth=on}" >>"$dir/stack.log"
  cat "$dir/stack.env"
}

# The number of Kafka nodes of the stack in DIR (0: none).
stack_nodes() {
  local b
  [ -f "$1/stack.env" ] || { echo 0; return; }
  b=$(env_get "$1/stack.env" FLEET_KAFKA_BROKERS)
  IFS=, read -r -a b <<<"$b"
  echo "${#b[@]}"
}

# up for --brokers N > 1 (DIR locked, stale stack stopped): N nodes + redis-server.
up_cluster() {
  local dir=$1 attempt t0 ports bports cports rport brokers="" controllers="" p i
  [ -z "$SASL_USER" ] || die "--sasl-plain is not supported with --brokers $KAFKA_NODES"
  t0=$(now_ms)
  for attempt in 1 2 3; do
    PORT_CONFLICT=0
    read -r -a ports < <(free_ports $((2 * KAFKA_NODES + 1)))
    bports=${ports[*]:0:KAFKA_NODES}; cports=${ports[*]:KAFKA_NODES:KAFKA_NODES}; rport=${ports[$((2 * KAFKA_NODES))]}
    write_auth_env "$dir" 0
    if start_redis "$dir" "$rport" && start_cluster "$dir" "$bports" "$cports"; then
      break
    fi
    down_locked "$dir" quiet
    { [ "$PORT_CONFLICT" -eq 1 ] && [ "$attempt" -lt 3 ]; } || die "could not start the stack in $dir (logs: $dir/kafka-*/server.log, $dir/redis/redis.log)"
    log "start attempt $attempt lost a port race; retrying with new ports"
  done
  for p in $bports; do brokers+="${brokers:+,}127.0.0.1:$p"; done
  for p in $cports; do controllers+="${controllers:+,}127.0.0.1:$p"; done
  {
    echo "FLEET_KAFKA_BROKERS=$brokers"
    echo "FLEET_REDIS_URL=redis://127.0.0.1:$rport/0"
    echo "FLEET_KAFKA_CONTROLLER=$controllers"
    echo "FLEET_KAFKA_VERSION=$KAFKA_VERSION"
    echo "FLEET_KAFKA_NODES=$KAFKA_NODES"
    p=""
    for ((i = 1; i <= KAFKA_NODES; i++)); do p+="${p:+,}$(cat "$(node_pidfile "$dir" "$i")")"; done
    echo "FLEET_KAFKA_BROKER_PIDS=$p"
  } >"$dir/stack.env.tmp"
  mv "$dir/stack.env.tmp" "$dir/stack.env"
  log "up in $dir: kafka $KAFKA_VERSION cluster of $KAFKA_NODES on $brokers (ready ${KAFKA_START_MS} ms after" \
      "launch), redis on 127.0.0.1:$rport; total $(( $(now_ms) - t0 )) ms"
  echo "$(date -Is) up nodes=$KAFKA_NODES kafka_start_ms=$KAFKA_START_MS brokers=$brokers redis=127.0.0.1:$rport" \
       "${REDIS_PASS:+ redis_auth=on}" >>"$dir/stack.log"
  cat "$dir/stack.env"
}

down_locked() {  # DIR [quiet]
  local dir=$1 pid kp="" rp="" sp="" kl="" b
  if [ -f "$dir/stack.env" ]; then
    kl=$(env_get "$dir/stack.env" FLEET_KAFKA_BROKERS)
    kp=$(env_get "$dir/stack.env" FLEET_KAFKA_BROKERS); kp=${kp##*:}
    rp=$(env_get "$dir/stack.env" FLEET_REDIS_URL); rp=${rp##*:}; rp=${rp%%/*}
    sp=$(env_get "$dir/stack.env" FLEET_KAFKA_SASL_BROKERS); sp=${sp##*:}
  fi
  if pid=$(pid_is "$dir/kafka.pid" kafka.Kafka); then
    [ -z "${2:-}" ] && log "stopping kafka (pid $pid)"
    stop_pid "$pid" "$TIMEOUT"
  fi
  stop_cluster "$dir" "${2:-}"
  if pid=$(pid_is "$dir/redis.pid" redis-server); then
    [ -z "${2:-}" ] && log "stopping redis-server (pid $pid)"
    stop_pid "$pid" 30
  fi
  rm -f "$dir/kafka.pid" "$dir/redis.pid" "$dir/stack.env" "$dir/stack.auth.env" "$dir/stack.opts"
  if [[ "$kl" == *,* ]]; then
    IFS=, read -r -a kl <<<"$kl"
    for b in "${kl[@]}"; do wait_port_closed "${b##*:}" 30; done
  else
    [ -n "$kp" ] && wait_port_closed "$kp" 30
  fi
  [ -n "$rp" ] && wait_port_closed "$rp" 30
  [ -n "$sp" ] && wait_port_closed "$sp" 30
  return 0
}

down() {
  local dir=$1
  [ -d "$dir" ] || { log "nothing in $dir"; return 0; }
  dir=$(abs_dir "$dir")
  exec 8>"$dir/.stack.lock"
  flock -w "$TIMEOUT" 8 || die "another 'up'/'down' holds $dir/.stack.lock"
  down_locked "$dir"
  echo "$(date -Is) down" >>"$dir/stack.log"
  log "down in $dir"
}

# Outages for tests: the broker stopped and started again over its data (same ports), and
# redis-server shut down (SHUTDOWN: the append-only file is written) and started again.
kafka_stop() {
  local dir pid
  dir=$(abs_dir "$1")
  pid=$(pid_is "$dir/kafka.pid" kafka.Kafka) || die "no broker running in $dir"
  stop_pid "$pid" "$TIMEOUT"
  echo "$(date -Is) kafka-stop" >>"$dir/stack.log"
}

kafka_start() {
  local dir bport sport=""
  dir=$(abs_dir "$1")
  [ -f "$dir/stack.env" ] || die "no stack in $dir"
  pid_is "$dir/kafka.pid" kafka.Kafka >/dev/null && die "the broker in $dir is running"
  bport=$(env_get "$dir/stack.env" FLEET_KAFKA_BROKERS); bport=${bport##*:}
  sport=$(env_get "$dir/stack.env" FLEET_KAFKA_SASL_BROKERS); sport=${sport##*:}
  SASL_USER=""  # readiness: the plain listener answering is enough
  launch_kafka "$dir" "$bport" "${sport:-0}" || die "the broker did not start again (log: $dir/kafka/server.log)"
  echo "$(date -Is) kafka-start ready_ms=$KAFKA_START_MS" >>"$dir/stack.log"
  log "kafka up again on 127.0.0.1:$bport (${KAFKA_START_MS} ms)"
}

redis_port() { local p; p=$(env_get "$1/stack.env" FLEET_REDIS_URL); p=${p##*:}; echo "${p%%/*}"; }

redis_stop() {
  local dir rport pid deadline
  dir=$(abs_dir "$1")
  [ -f "$dir/stack.env" ] || die "no stack in $dir"
  rport=$(redis_port "$dir")
  pid=$(pid_is "$dir/redis.pid" redis-server) || die "no redis-server running in $dir"
  redis_cli_auth "$dir" -h 127.0.0.1 -p "$rport" SHUTDOWN >/dev/null 2>&1 || true
  deadline=$(( $(now_ms) + 30000 ))
  while alive "$pid"; do
    [ "$(now_ms)" -gt "$deadline" ] && die "redis-server (pid $pid) did not shut down"
    sleep 0.05
  done
  rm -f "$dir/redis.pid"
  wait_port_closed "$rport" 30
  echo "$(date -Is) redis-stop" >>"$dir/stack.log"
}

redis_kill() {
  local dir rport pid
  dir=$(abs_dir "$1")
  [ -f "$dir/stack.env" ] || die "no stack in $dir"
  rport=$(redis_port "$dir")
  pid=$(pid_is "$dir/redis.pid" redis-server) || die "no redis-server running in $dir"
  kill -9 "$pid"
  while alive "$pid"; do sleep 0.02; done
  rm -f "$dir/redis.pid"
  wait_port_closed "$rport" 30
  echo "$(date -Is) redis-kill" >>"$dir/stack.log"
}

redis_start() {
  local dir
  dir=$(abs_dir "$1")
  [ -f "$dir/stack.env" ] || die "no stack in $dir"
  launch_redis "$dir" "$(redis_port "$dir")" || die "redis-server did not start again (log: $dir/redis/redis.log)"
  echo "$(date -Is) redis-start" >>"$dir/stack.log"
  log "redis up again on 127.0.0.1:$(redis_port "$dir")"
}

status() {
  local dir=$1
  if [ -d "$dir" ] && stack_answering "$(abs_dir "$dir")"; then
    cat "$dir/stack.env"; return 0
  fi
  log "not up in $dir"; return 1
}

# kafka_tool DIR MAIN ARGS...: a Kafka command-line tool against the stack in DIR.
kafka_tool() {
  local dir=$1 main=$2 brokers; shift 2
  [ -f "$dir/stack.env" ] || die "no stack in $dir (run: scripts/stack.sh up $dir)"
  brokers=$(env_get "$dir/stack.env" FLEET_KAFKA_BROKERS)
  fetch
  exec java -Xmx256m -XX:TieredStopAtLevel=1 \
    "-Dlog4j.configuration=file:$KAFKA_HOME/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$main" --bootstrap-server "$brokers" "$@"
}

cmd=${1:-}
case "$cmd" in
  topics) [ $# -ge 2 ] || usage; d=$2; shift 2; kafka_tool "$d" org.apache.kafka.tools.TopicCommand "$@" ;;
  groups) [ $# -ge 2 ] || usage; d=$2; shift 2
          kafka_tool "$d" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  fetch)  fetch ;;
  up)     [ $# -ge 2 ] || usage; d=$2; shift 2; parse_kafka_options "$@"
          parse_up_options ${UP_ARGS[@]+"${UP_ARGS[@]}"}; up "$d" ;;
  broker-pid) [ $# -eq 3 ] || usage; broker_pid "$2" "$3" ;;
  node-kill)  [ $# -eq 3 ] || usage; node_kill "$2" "$3" ;;
  node-start) [ $# -eq 3 ] || usage; node_start "$2" "$3" ;;
  down)   [ $# -eq 2 ] || usage; down "$2" ;;
  status) [ $# -eq 2 ] || usage; status "$2" ;;
  kafka-stop)    [ $# -eq 2 ] || usage; kafka_stop "$2" ;;
  kafka-start)   [ $# -eq 2 ] || usage; kafka_start "$2" ;;
  redis-stop)    [ $# -eq 2 ] || usage; redis_stop "$2" ;;
  redis-start)   [ $# -eq 2 ] || usage; redis_start "$2" ;;
  redis-restart) [ $# -eq 2 ] || usage; redis_stop "$2"; redis_start "$2" ;;
  redis-kill)    [ $# -eq 2 ] || usage; redis_kill "$2" ;;
  *)      usage ;;
esac
