# Sourced by scripts/stack.sh: the Kafka side of the local stack (docs/stack.md).
#
#   scripts/stack.sh up DIR               one KRaft node (broker + controller) in DIR/kafka,
#                                         pid in DIR/kafka.pid
#   scripts/stack.sh up DIR --brokers 3   a 3-node KRaft cluster: node i (1..3) is broker +
#                                         controller in DIR/kafka-<i>, pid in DIR/kafka-<i>.pid;
#                                         replication factor 3, min.insync.replicas 2, a dead
#                                         node fenced within seconds (docs/stack.md)
#   scripts/stack.sh broker-pid DIR ID    the pid of node ID (the cluster's, or 1 for one node)

kafka_ok() {  # PORT [NODE_ID [BROKERS]]
  # Metadata answered by the broker and it lists itself: it is registered and unfenced (and,
  # for a cluster, all BROKERS of it are).
  local md
  port_open "$1" || return 1
  md=$(kcat -L -b "127.0.0.1:$1" -m 2 2>/dev/null) || return 1
  [[ "$md" == *"broker ${2:-1} at 127.0.0.1:$1"* ]] || return 1
  [ -z "${3:-}" ] || [[ "$md" == *" $3 brokers:"* ]]
}

# --------------------------------------------------------------------------- kafka
# A cluster id starting with '-' would be read as an option by StorageTool: draw again.
new_cluster_id() {
  local cid=-
  while [ "${cid#-}" != "$cid" ]; do
    cid=$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  done
  echo "$cid"
}

write_kafka_config() {  # DIR BROKER_PORT CONTROLLER_PORT SASL_PORT
  local dir=$1 bport=$2 cport=$3 k="$1/kafka"
  touch "$k/server.properties" && chmod 600 "$k/server.properties"  # may hold a JAAS password
  cat >"$k/server.properties" <<EOF
# Written by scripts/stack.sh up: a single-node KRaft broker+controller for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$k/data

# Topics: created on first use with num.partitions, or explicitly (kcat/AdminClient).
auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=${FLEET_KAFKA_PARTITIONS:-4}
default.replication.factor=1
min.insync.replicas=1
# Largest record batch the broker accepts: Kafka's default, 1 MiB + 12 bytes.
# Producers of large activations must chunk below this (docs/stack.md).
message.max.bytes=1048588
replica.fetch.max.bytes=1048576

# Single node: internal topics with one replica, few partitions, no rebalance delay.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# Group consumers use session.timeout.ms=3000 (fleet::bus::consumer_defaults) so that a
# killed replica's partitions move within ~4 s; the broker refuses sessions shorter
# than this (Kafka's default, 6000, would reject them with INVALID_SESSION_TIMEOUT).
group.min.session.timeout.ms=1000

# Small machine: few threads, small segments, short retention (test data only).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.segment.bytes=67108864
log.retention.hours=24
log.retention.check.interval.ms=300000
EOF
  if [ -n "$SASL_USER" ]; then
    sasl_listener_properties "$bport" "$cport" "$4" >>"$k/server.properties"
    write_kcat_sasl_conf "$dir"
  fi
  write_kafka_log4j "$k"
}

write_kafka_log4j() {  # K: the node's directory
  local k=$1
  cat >"$k/log4j.properties" <<EOF
# Written by scripts/stack.sh up: everything at INFO+ to kafka/server.log, quiet console.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$k/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
}

# kafka_java DIR [K]: sets KAFKA_JAVA to the java command line (up to the main class).
# An array rather than a function, so that `"${KAFKA_JAVA[@]}" ... &` makes $! the
# JVM's own pid.
kafka_java() {
  local dir=$1 k=${2:-$1/kafka}
  # shellcheck disable=SC2206
  KAFKA_JAVA=(java ${FLEET_KAFKA_HEAP:--Xms256m -Xmx512m}
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$k/log4j.properties"
    "-Dkafka.logs.dir=$k"
    -cp "$KAFKA_LIBS/*")
}

start_kafka() {  # start_kafka DIR BROKER_PORT CONTROLLER_PORT SASL_PORT: a fresh broker
  local dir=$1 bport=$2 cport=$3 sport=$4 k="$1/kafka" cid
  # A fresh start gets a fresh data dir: the stack holds test data only, and the
  # controller's address (part of the quorum state) changes with the port.
  rm -rf "$k"
  mkdir -p "$k/data"
  write_kafka_config "$dir" "$bport" "$cport" "$sport"
  cid=$(new_cluster_id)
  echo "$cid" >"$k/cluster.id"
  kafka_java "$dir"
  if ! "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cid" -c "$k/server.properties" \
        </dev/null >"$k/format.log" 2>&1; then
    tail -n 30 "$k/format.log" >&2
    log "kafka storage format failed (log: $k/format.log)"
    return 1
  fi
  launch_kafka "$dir" "$bport" "$sport"
}

# launch_kafka DIR BROKER_PORT SASL_PORT: the broker over what DIR/kafka holds (formatted).
launch_kafka() {
  local dir=$1 bport=$2 sport=$3 k="$1/kafka" pid t0 deadline
  kafka_java "$dir"
  t0=$(now_ms)
  # The broker outlives this script and its terminal; stdio to files so a
  # caller capturing our output (ctest) is not held open by the broker; the lock
  # fds are closed so a running broker does not hold the lock of DIR.
  "${KAFKA_JAVA[@]}" kafka.Kafka "$k/server.properties" </dev/null >"$k/kafka.out" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  deadline=$(( t0 + TIMEOUT * 1000 ))
  until kafka_ok "$bport" && { [ -z "$SASL_USER" ] || sasl_ok "$dir" "$sport"; }; do
    if ! alive "$pid"; then
      grep -q "BindException\|Address already in use" "$k/server.log" "$k/kafka.out" 2>/dev/null && PORT_CONFLICT=1
      log "kafka exited during startup; tail of $k/server.log and $k/kafka.out:"
      tail -n 30 "$k/server.log" >&2 2>/dev/null || true
      tail -n 20 "$k/kafka.out" >&2 2>/dev/null || true
      rm -f "$dir/kafka.pid"
      return 1
    fi
    if [ "$(now_ms)" -gt "$deadline" ]; then
      log "kafka did not answer on 127.0.0.1:$bport within ${TIMEOUT}s; tail of $k/server.log:"
      tail -n 30 "$k/server.log" >&2 2>/dev/null || true
      stop_pid "$pid" 30
      rm -f "$dir/kafka.pid"
      return 1
    fi
    sleep 0.1
  done
  KAFKA_START_MS=$(( $(now_ms) - t0 ))
}


# --------------------------------------------------------------------------- cluster
# KAFKA_NODES: how many KRaft nodes `up` starts (--brokers N; 1 = the single node above).
KAFKA_NODES=1
# Heap of each cluster node (three JVMs share the machine); FLEET_KAFKA_HEAP overrides.
CLUSTER_HEAP="-Xms128m -Xmx384m"

# Takes --brokers N out of the options of `up`; the rest is left in UP_ARGS.
parse_kafka_options() {  # ARGS... (after `up DIR`)
  UP_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --brokers)
        [ $# -ge 2 ] || die "--brokers needs N (1 or 3)"
        case "$2" in 1|3) KAFKA_NODES=$2 ;; *) die "--brokers: N must be 1 or 3" ;; esac
        shift 2 ;;
      *) UP_ARGS+=("$1"); shift ;;
    esac
  done
}

# Node i of a cluster: its directory and pid file.
node_dir() { echo "$1/kafka-$2"; }
node_pidfile() { echo "$1/kafka-$2.pid"; }

# write_node_config DIR I BROKER_PORTS CONTROLLER_PORTS (ports: space-separated, node 1 first)
write_node_config() {
  local dir=$1 i=$2 k voters="" j=1 p bport cport bp cp
  k=$(node_dir "$dir" "$i")
  read -r -a bp <<<"$3"; read -r -a cp <<<"$4"
  for p in "${cp[@]}"; do voters+="${voters:+,}$j@127.0.0.1:$p"; j=$((j + 1)); done
  bport=${bp[$((i - 1))]}; cport=${cp[$((i - 1))]}
  cat >"$k/server.properties" <<PROPS
# Written by scripts/stack.sh up --brokers $KAFKA_NODES: node $i of a KRaft cluster, each node
# broker + controller, replicated like production (docs/stack.md).
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$k/data

auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=${FLEET_KAFKA_PARTITIONS:-4}
default.replication.factor=$KAFKA_NODES
min.insync.replicas=2
unclean.leader.election.enable=false
message.max.bytes=1048588
replica.fetch.max.bytes=1048576

offsets.topic.replication.factor=$KAFKA_NODES
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$KAFKA_NODES
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000

# Failover: a node that stops heartbeating is fenced after broker.session.timeout.ms (Kafka's
# default 9000), which takes it out of every ISR and moves its leaderships; a dead active
# controller is replaced after controller.quorum.fetch.timeout.ms + an election. A follower that
# stops fetching leaves the ISR after replica.lag.time.max.ms (default 30000).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
controller.quorum.election.timeout.ms=500
controller.quorum.fetch.timeout.ms=2000
controller.quorum.election.backoff.max.ms=500
replica.lag.time.max.ms=5000
replica.socket.timeout.ms=5000

num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=67108864
log.retention.hours=24
log.retention.check.interval.ms=300000
PROPS
  write_kafka_log4j "$k"
}

# start_cluster DIR BROKER_PORTS CONTROLLER_PORTS: KAFKA_NODES fresh nodes, formatted with one
# cluster id, launched together; returns when every node lists all of them as brokers.
start_cluster() {
  local dir=$1 i k cid rc=0 pids=()
  cid=$(new_cluster_id)
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    k=$(node_dir "$dir" "$i")
    rm -rf "$k"; mkdir -p "$k/data"
    write_node_config "$dir" "$i" "$2" "$3"
    echo "$cid" >"$k/cluster.id"
    FLEET_KAFKA_HEAP=${FLEET_KAFKA_HEAP:-$CLUSTER_HEAP} kafka_java "$dir" "$k"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cid" -c "$k/server.properties" \
      </dev/null >"$k/format.log" 2>&1 8>&- 9>&- &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      tail -n 30 "$(node_dir "$dir" $((i + 1)))/format.log" >&2; rc=1
    fi
  done
  [ "$rc" -eq 0 ] || { log "kafka storage format failed"; return 1; }
  launch_cluster "$dir" "$2"
}

# launch_cluster DIR BROKER_PORTS: every node over what its directory holds.
launch_cluster() {
  local dir=$1 i k t0 deadline pid ready bp
  read -r -a bp <<<"$2"
  t0=$(now_ms)
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    k=$(node_dir "$dir" "$i")
    FLEET_KAFKA_HEAP=${FLEET_KAFKA_HEAP:-$CLUSTER_HEAP} kafka_java "$dir" "$k"
    "${KAFKA_JAVA[@]}" kafka.Kafka "$k/server.properties" </dev/null >"$k/kafka.out" 2>&1 8>&- 9>&- &
    echo "$!" >"$(node_pidfile "$dir" "$i")"
  done
  deadline=$(( t0 + TIMEOUT * 1000 ))
  while :; do
    ready=0
    for ((i = 1; i <= KAFKA_NODES; i++)); do
      k=$(node_dir "$dir" "$i")
      pid=$(cat "$(node_pidfile "$dir" "$i")")
      if ! alive "$pid"; then
        grep -q "BindException\|Address already in use" "$k/server.log" "$k/kafka.out" 2>/dev/null && PORT_CONFLICT=1
        log "kafka node $i exited during startup; tail of $k/server.log and $k/kafka.out:"
        tail -n 30 "$k/server.log" >&2 2>/dev/null || true
        tail -n 20 "$k/kafka.out" >&2 2>/dev/null || true
        return 1
      fi
      kafka_ok "${bp[$((i - 1))]}" "$i" "$KAFKA_NODES" && ready=$((ready + 1))
    done
    [ "$ready" -eq "$KAFKA_NODES" ] && break
    if [ "$(now_ms)" -gt "$deadline" ]; then
      log "the kafka cluster was not up within ${TIMEOUT}s (logs: $dir/kafka-*/server.log)"
      return 1
    fi
    sleep 0.1
  done
  KAFKA_START_MS=$(( $(now_ms) - t0 ))
}

# cluster_answering DIR BROKERS: every node's process is ours and answers, listing all nodes.
cluster_answering() {
  local dir=$1 i=1 b n bl
  IFS=, read -r -a bl <<<"$2"
  n=${#bl[@]}
  for b in "${bl[@]}"; do
    pid_is "$(node_pidfile "$dir" "$i")" kafka.Kafka >/dev/null || return 1
    kafka_ok "${b##*:}" "$i" "$n" || return 1
    i=$((i + 1))
  done
}

# stop_cluster DIR [quiet]: SIGTERM to every node at once (one at a time, the last ones would
# wait for a controller quorum that is gone), SIGKILL after 20 s: test data only.
stop_cluster() {
  local dir=$1 f pid pids=()
  for f in "$dir"/kafka-*.pid; do
    [ -e "$f" ] || continue
    if pid=$(pid_is "$f" kafka.Kafka); then
      [ -z "${2:-}" ] && log "stopping kafka node $(basename "$f" .pid) (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  for pid in "${pids[@]}"; do stop_pid "$pid" 20; done
  return 0
}

# node_kill DIR ID: kill -9 of cluster node ID (a crash: no controlled shutdown); returns once
# it is gone.
node_kill() {
  local dir pid
  dir=$(abs_dir "$1")
  pid=$(pid_is "$(node_pidfile "$dir" "$2")" kafka.Kafka) || die "no kafka node $2 running in $dir"
  kill -KILL "$pid"
  while alive "$pid"; do sleep 0.05; done
  echo "$(date -Is) node-kill $2" >>"$dir/stack.log"
}

# node_start DIR ID: cluster node ID again over what its directory holds (same ports); returns
# when it answers as a broker of the whole cluster.
node_start() {
  local dir i k bl n t0 deadline pid
  dir=$(abs_dir "$1"); i=$2; k=$(node_dir "$dir" "$2")
  [ -f "$k/server.properties" ] || die "no kafka node $i in $dir"
  pid_is "$(node_pidfile "$dir" "$i")" kafka.Kafka >/dev/null && die "kafka node $i in $dir is running"
  IFS=, read -r -a bl <<<"$(env_get "$dir/stack.env" FLEET_KAFKA_BROKERS)"
  n=${#bl[@]}
  t0=$(now_ms)
  FLEET_KAFKA_HEAP=${FLEET_KAFKA_HEAP:-$CLUSTER_HEAP} kafka_java "$dir" "$k"
  "${KAFKA_JAVA[@]}" kafka.Kafka "$k/server.properties" </dev/null >>"$k/kafka.out" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$(node_pidfile "$dir" "$i")"
  deadline=$(( t0 + TIMEOUT * 1000 ))
  until kafka_ok "${bl[$((i - 1))]##*:}" "$i" "$n"; do
    alive "$pid" || die "kafka node $i exited while starting (log: $k/server.log)"
    [ "$(now_ms)" -le "$deadline" ] || die "kafka node $i did not answer within ${TIMEOUT}s"
    sleep 0.1
  done
  echo "$(date -Is) node-start $i ready_ms=$(( $(now_ms) - t0 ))" >>"$dir/stack.log"
}

broker_pid() {  # DIR ID
  local dir f
  dir=$(abs_dir "$1")
  f=$(node_pidfile "$dir" "$2")
  [ -e "$f" ] || { [ "$2" = 1 ] && f="$dir/kafka.pid"; }
  pid_is "$f" kafka.Kafka || die "no kafka node $2 running in $dir"
}
