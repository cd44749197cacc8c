#!/usr/bin/env bash
# Test harness for a REAL Apache Kafka broker (KRaft, combined broker+controller
# nodes), fetched from Maven Central with `mvn` and run straight from its jars.
#
#   kafka.sh fetch                             fetch the broker jars into the cache
#   kafka.sh start [--brokers 1|3] [--dir DIR] [--sasl-ssl]
#                                              start a fresh cluster, print bootstrap
#   kafka.sh stop [--dir DIR]                  stop every node (idempotent)
#   kafka.sh stop-node I [--dir DIR]           stop node I (1-based)
#   kafka.sh start-node I [--dir DIR]          restart node I with its existing data
#   kafka.sh status [--dir DIR]                show which nodes are running
#   kafka.sh create-topic NAME [--partitions P] [--replication-factor R] [--dir DIR]
#   kafka.sh logs [--dir DIR]                  tail of every node's server.log
#
# Environment:
#   KWS_KAFKA_VERSION   Kafka version to fetch/run (default 4.3.1, pinned below)
#   KWS_CACHE_DIR       jar cache (default $HOME/.cache/kafka-webhook-sidecar)
#   KWS_KAFKA_DIR       cluster directory (default <repo>/.kafka)
#   KWS_KAFKA_HEAP      JVM heap flags per node (default "-Xmx512m -Xms256m")
#   KWS_KAFKA_JVM_OPTS  JVM flags per node besides the heap (default: G1, C1 only)
#   KWS_KAFKA_START_TIMEOUT  seconds to wait for the cluster (default 90)
#
# Layout of DIR: bootstrap (bootstrap address), nodes (node count), and per node
# node-I/{server.properties, address, pid, data/, logs/server.log, stdout.log}.
#
# --sasl-ssl adds a SASL_SSL listener (SCRAM-SHA-512 over TLS) on every node besides
# PLAINTEXT: a test CA and broker certificate (SAN IP:127.0.0.1, DNS:localhost) are made
# with openssl, and one SCRAM user is created when the storage is formatted. Extra files:
# sasl-bootstrap (the SASL_SSL addresses), sasl-username, sasl-password (random),
# tls/ca.pem (for the clients' ssl.ca.location).
set -euo pipefail

# Newest Apache Kafka 4.x whose full dependency closure is on Maven Central
# (4.4.0's kafka_2.13 pom is published but its kafka-tools-api jar is not).
DEFAULT_KAFKA_VERSION=4.3.1
KAFKA_VERSION=${KWS_KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
SCALA_VERSION=2.13

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
CACHE_ROOT=${KWS_CACHE_DIR:-${HOME:-/root}/.cache/kafka-webhook-sidecar}
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LOG4J_CONFIG="$KAFKA_HOME/config/log4j2.properties"
HEAP_OPTS=${KWS_KAFKA_HEAP:--Xmx512m -Xms256m}
# C1 only (TieredStopAtLevel=1): starts a 3-node cluster ~30% faster on 2 cores.
JVM_OPTS=${KWS_KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}
# Short-lived tool JVMs (StorageTool, create-topic).
TOOL_JVM=("-XX:TieredStopAtLevel=1" "-XX:+UseSerialGC" "-Xshare:auto")
START_TIMEOUT=${KWS_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=30

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA=java
fi

log() { printf '[kafka.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

# ---------------------------------------------------------------- fetch ----

write_log4j_config() {
    local dest=$1 tmp
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp" <<'EOF'
# Written by scripts/kafka.sh: everything goes to ${kafka.logs.dir}/server.log.
name = kws-test-broker
status = warn
# Kafka's own shutdown hook logs until the end; keep the file appender open.
shutdownHook = disable

appender.server.type = File
appender.server.name = SERVER
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.append = true
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n

rootLogger.level = INFO
rootLogger.appenderRef.server.ref = SERVER

# Noisy loggers: per-request, per-partition and per-segment chatter.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.kafkalog.name = kafka.log
logger.kafkalog.level = WARN
logger.storagelog.name = org.apache.kafka.storage.internals.log
logger.storagelog.level = WARN
logger.partition.name = kafka.cluster.Partition
logger.partition.level = WARN
logger.fetcher.name = kafka.server.ReplicaFetcherManager
logger.fetcher.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
logger.metadataimage.name = org.apache.kafka.image
logger.metadataimage.level = WARN
# The full config dump (~400 lines, several times); server.properties has it.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
    chmod 644 "$tmp"
    mv -f "$tmp" "$dest"
}

run_mvn() {
    # run_mvn DIR ARGS...: quiet batch-mode mvn in DIR, output to stderr with
    # the stray ANSI resets of Maven 3.8's -q mode removed.
    local dir=$1
    shift
    (cd "$dir" && mvn -q -B -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2)
}

cmd_fetch() {
    command -v mvn >/dev/null || die "mvn not found (run scripts/setup.sh)"
    if [[ -f "$KAFKA_HOME/.complete" ]]; then
        write_log4j_config "$LOG4J_CONFIG"
        log "Kafka $KAFKA_VERSION already cached in $KAFKA_HOME"
        return 0
    fi
    mkdir -p "$CACHE_ROOT"
    local tmp
    tmp=$(mktemp -d "$CACHE_ROOT/.kafka-$KAFKA_VERSION.tmp.XXXXXX")
    # shellcheck disable=SC2064 # expand $tmp now, the variable is local
    trap "rm -rf '$tmp'" EXIT
    log "fetching org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION from Maven Central into $KAFKA_HOME"
    mkdir -p "$tmp/pom" "$tmp/lib" "$tmp/config"
    cat >"$tmp/pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kws</groupId>
  <artifactId>kafka-broker-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
</project>
EOF
    run_mvn "$tmp/pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/lib" ||
        die "mvn could not fetch Kafka $KAFKA_VERSION"

    # The Maven closure has log4j-core and slf4j-api but no SLF4J->log4j2
    # binding; without one the broker logs nothing. Pick the binding that
    # matches the SLF4J major version, at the closure's log4j-core version.
    local core slf4j log4j_version slf4j_version binding
    core=$(find "$tmp/lib" -maxdepth 1 -name 'log4j-core-*.jar' -printf '%f\n' | head -n1)
    slf4j=$(find "$tmp/lib" -maxdepth 1 -name 'slf4j-api-*.jar' -printf '%f\n' | head -n1)
    [[ -n "$core" && -n "$slf4j" ]] || die "log4j-core or slf4j-api missing from the Kafka closure"
    log4j_version=${core#log4j-core-}
    log4j_version=${log4j_version%.jar}
    slf4j_version=${slf4j#slf4j-api-}
    slf4j_version=${slf4j_version%.jar}
    if [[ "$slf4j_version" == 1.* ]]; then
        binding=log4j-slf4j-impl
    else
        binding=log4j-slf4j2-impl
    fi
    log "adding SLF4J binding org.apache.logging.log4j:$binding:$log4j_version (slf4j-api $slf4j_version)"
    run_mvn "$tmp/pom" dependency:copy \
        -Dartifact="org.apache.logging.log4j:$binding:$log4j_version" \
        -DoutputDirectory="$tmp/lib" ||
        die "mvn could not fetch $binding $log4j_version"

    compgen -G "$tmp/lib/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" >/dev/null ||
        die "kafka_$SCALA_VERSION-$KAFKA_VERSION.jar missing after fetch"
    rm -rf "$tmp/pom"
    write_log4j_config "$tmp/config/log4j2.properties"
    printf '%s\n' "$KAFKA_VERSION" >"$tmp/.complete"
    # Atomic publish: a half-fetched cache is never visible under the real name.
    if ! mv -T "$tmp" "$KAFKA_HOME" 2>/dev/null; then
        [[ -f "$KAFKA_HOME/.complete" ]] || die "could not move fetched Kafka into $KAFKA_HOME"
        log "another fetch finished first; using it"
        rm -rf "$tmp"
    fi
    trap - EXIT
    log "Kafka $KAFKA_VERSION cached: $(find "$KAFKA_HOME/lib" -name '*.jar' | wc -l) jars"
}

# ------------------------------------------------------------- helpers ----

parse_dir_opts() {
    # Sets DIR and BROKERS from --dir/--brokers; leftover args go to ARGS.
    DIR=${KWS_KAFKA_DIR:-$REPO_ROOT/.kafka}
    BROKERS=1
    SASL_SSL=0
    ARGS=()
    while (($#)); do
        case $1 in
        --sasl-ssl) SASL_SSL=1; shift ;;
        --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --brokers) BROKERS=${2:?--brokers needs a value}; shift 2 ;;
        --brokers=*) BROKERS=${1#--brokers=}; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) ARGS+=("$1"); shift ;;
        esac
    done
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
}

node_dir() { printf '%s/node-%s' "$DIR" "$1"; }

node_count() {
    if [[ -f "$DIR/nodes" ]]; then cat "$DIR/nodes"; else echo 0; fi
}

# Prints the pid of node I if its JVM is running (and really is that node).
node_pid() {
    local nd pid
    nd=$(node_dir "$1")
    [[ -f "$nd/pid" ]] || return 1
    pid=$(<"$nd/pid")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$nd/server.properties" || return 1
    printf '%s\n' "$pid"
}

pid_alive() {
    # true if the process exists and is not a zombie
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

port_listening() {
    # true if something accepts TCP connections on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_ports() {
    # Prints $1 distinct free TCP ports on 127.0.0.1, chosen below the kernel's
    # ephemeral range so that no outgoing connection (nor a port-0 listener of
    # a test) can grab one between choosing it and the broker binding it.
    python3 - "$1" <<'EOF'
import random, socket, sys
want = int(sys.argv[1])
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except Exception:
    low = 32768
hi = max(low, 12000)
candidates = list(range(10000, hi))
random.shuffle(candidates)
socks = []
for port in candidates:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    if len(socks) == want:
        break
if len(socks) < want:
    sys.exit("no free ports")
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

node_ports() {
    # Every listener port of node I (broker, controller, SASL_SSL if any), from its
    # server.properties
    local props
    props="$(node_dir "$1")/server.properties"
    sed -n 's/^listeners=//p' "$props" | tr ',' '\n' | sed -n 's/^[A-Z_]*:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' | tr '\n' ' '
}

tail_node_log() {
    local i=$1 n=${2:-100} nd
    nd=$(node_dir "$i")
    if [[ -s "$nd/logs/server.log" ]]; then
        echo "===== node $i: $nd/logs/server.log (last $n lines) ====="
        tail -n "$n" "$nd/logs/server.log"
    else
        echo "===== node $i: no server.log ====="
    fi
    if [[ -s "$nd/stdout.log" ]]; then
        echo "===== node $i: $nd/stdout.log (last 30 lines) ====="
        tail -n 30 "$nd/stdout.log"
    fi
}

launch_node() {
    local i=$1 nd
    nd=$(node_dir "$i")
    mkdir -p "$nd/logs"
    rm -f "$nd/pid"
    local -a heap extra
    read -r -a heap <<<"$HEAP_OPTS"
    read -r -a extra <<<"$JVM_OPTS"
    # setsid: own session, so Ctrl-C in the caller's terminal doesn't hit it.
    # The inner shell writes its own pid, then execs the JVM under that pid.
    # shellcheck disable=SC2016 # $$ and "$@" are for the inner shell
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$nd/pid" \
        "$JAVA" "${heap[@]}" \
        "${extra[@]}" \
        "-Dkafka.logs.dir=$nd/logs" \
        "-Dlog4j2.configurationFile=$LOG4J_CONFIG" \
        -cp "$KAFKA_HOME/lib/*" \
        kafka.Kafka "$nd/server.properties" \
        </dev/null >>"$nd/stdout.log" 2>&1 &
    local waited=0
    while [[ ! -s "$nd/pid" ]] && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    [[ -s "$nd/pid" ]] || die "node $i did not start"
}

# Probes metadata via kcat; prints the number of brokers listed (0 on failure).
broker_count() {
    kcat -b "$1" -L -t __kws_probe -m 3 -J 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("brokers", [])))' 2>/dev/null ||
        echo 0
}

wait_ready() {
    # wait_ready BOOTSTRAP EXPECTED_BROKERS NODE...
    local bootstrap=$1 want=$2
    shift 2
    local deadline=$((SECONDS + START_TIMEOUT)) i got
    while :; do
        for i in "$@"; do
            if ! node_pid "$i" >/dev/null; then
                log "node $i died during startup"
                tail_node_log "$i" 60 >&2
                return 1
            fi
        done
        got=$(broker_count "$bootstrap")
        if ((got >= want)); then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "cluster not ready after ${START_TIMEOUT}s ($got of $want brokers listed)"
            for i in "$@"; do tail_node_log "$i" 60 >&2; done
            return 1
        fi
        sleep 0.5
    done
}

# Stops the given nodes: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_nodes() {
    local i pid
    local -a pids=() ports=()
    for i in "$@"; do
        if pid=$(node_pid "$i"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            log "node $i (pid $pid): SIGTERM"
        fi
        if [[ -f "$(node_dir "$i")/server.properties" ]]; then
            # shellcheck disable=SC2207 # two port numbers
            ports+=($(node_ports "$i"))
        fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT)) killed=0 alive
    while :; do
        alive=()
        for pid in "${pids[@]}"; do
            if pid_alive "$pid"; then alive+=("$pid"); fi
        done
        ((${#alive[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            ((killed == 0)) || die "processes survived SIGKILL: ${alive[*]}"
            log "still running after ${STOP_TIMEOUT}s, SIGKILL: ${alive[*]}"
            for pid in "${alive[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
            killed=1
            deadline=$((SECONDS + 10))
        fi
        sleep 0.2
    done
    for i in "$@"; do rm -f "$(node_dir "$i")/pid"; done
    # Nothing may be left listening on the nodes' ports.
    local port left=()
    for port in "${ports[@]}"; do
        if port_listening "$port"; then left+=("$port"); fi
    done
    if ((${#left[@]})); then
        die "ports still listening after stop: ${left[*]}"
    fi
}

# ------------------------------------------------------------ commands ----

write_node_config() {
    # write_node_config I N VOTERS BROKER_PORT CONTROLLER_PORT [SASL_SSL_PORT]
    local i=$1 n=$2 voters=$3 bport=$4 cport=$5 sport=${6:-} nd rf minisr
    local listeners="PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport"
    local advertised="PLAINTEXT://127.0.0.1:$bport"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ -n "$sport" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:$sport"
        advertised+=",SASL_SSL://127.0.0.1:$sport"
        protocols+=",SASL_SSL:SASL_SSL"
    fi
    nd=$(node_dir "$i")
    if ((n >= 3)); then rf=3; minisr=2; else rf=1; minisr=1; fi
    mkdir -p "$nd/data" "$nd/logs"
    cat >"$nd/server.properties" <<EOF
# Written by scripts/kafka.sh: test cluster node $i of $n (KRaft combined mode).
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$nd/data

num.partitions=1
auto.create.topics.enable=false
default.replication.factor=$rf
min.insync.replicas=$minisr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$minisr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$minisr

group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500
group.share.min.session.timeout.ms=1000
group.share.min.heartbeat.interval.ms=500

log.cleaner.dedupe.buffer.size=2097152
EOF
    if [[ -n "$sport" ]]; then
        cat >>"$nd/server.properties" <<EOF

# SASL_SSL listener for clients (inter-broker and controller traffic stay PLAINTEXT).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$DIR/tls/broker.p12
ssl.keystore.password=$(<"$DIR/tls/store-password")
ssl.key.password=$(<"$DIR/tls/store-password")
EOF
    fi
    printf '127.0.0.1:%s\n' "$bport" >"$nd/address"
}

# Test CA, one broker certificate for 127.0.0.1/localhost in a PKCS12 keystore, and a
# SCRAM user with a random password, all under DIR.
make_sasl_ssl_material() {
    command -v openssl >/dev/null || die "openssl not found (needed by --sasl-ssl)"
    local tls="$DIR/tls"
    rm -rf "$tls"
    mkdir -p "$tls"
    (
        umask 077
        openssl rand -hex 16 >"$tls/store-password"
        printf 'kws\n' >"$DIR/sasl-username"
        openssl rand -hex 16 >"$DIR/sasl-password"
    )
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kws-test-ca" \
            -keyout "$tls/ca.key" -out "$tls/ca.pem" &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout "$tls/broker.key" -out "$tls/broker.csr" &&
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.cnf" &&
            openssl x509 -req -days 30 -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
                -CAcreateserial -extfile "$tls/san.cnf" -out "$tls/broker.pem" &&
            openssl pkcs12 -export -name broker -in "$tls/broker.pem" -inkey "$tls/broker.key" \
                -certfile "$tls/ca.pem" -out "$tls/broker.p12" -passout "file:$tls/store-password"
    } >"$tls/openssl.log" 2>&1 || { cat "$tls/openssl.log" >&2; die "could not make the test certificates"; }
}

start_abort() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        log "start failed (exit $rc); stopping the nodes it launched"
        (stop_nodes "${START_NODES[@]}") || true
    fi
    exit "$rc"
}

cmd_start() {
    parse_dir_opts "$@"
    ((${#ARGS[@]} == 0)) || die "start: unexpected argument ${ARGS[0]}"
    [[ "$BROKERS" == 1 || "$BROKERS" == 3 ]] || die "--brokers must be 1 or 3"
    command -v kcat >/dev/null || die "kcat not found (run scripts/setup.sh)"
    command -v python3 >/dev/null || die "python3 not found (run scripts/setup.sh)"
    local i old
    old=$(node_count)
    for ((i = 1; i <= old; i++)); do
        if node_pid "$i" >/dev/null; then
            die "a cluster is already running in $DIR (run: $0 stop --dir $DIR)"
        fi
    done
    cmd_fetch
    local t0=$SECONDS
    # Fresh cluster: remove only what this script creates.
    rm -rf "$DIR"/node-* "$DIR/tool-logs" "$DIR/bootstrap" "$DIR/nodes" "$DIR/cluster-id" \
        "$DIR/sasl-bootstrap" "$DIR/sasl-username" "$DIR/sasl-password" "$DIR/tls"

    local -a ports sasl_ports=()
    if ((SASL_SSL)); then
        make_sasl_ssl_material
        # SASL_SSL ports come after each node's broker and controller ports.
        local -a all
        read -r -a all <<<"$(free_ports $((3 * BROKERS)))"
        ports=("${all[@]:0:$((2 * BROKERS))}")
        sasl_ports=("${all[@]:$((2 * BROKERS))}")
    else
        read -r -a ports <<<"$(free_ports $((2 * BROKERS)))"
    fi
    local voters="" bootstrap=""
    for ((i = 1; i <= BROKERS; i++)); do
        voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"
        bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((2 * i - 2))]}"
    done
    local sasl_bootstrap=""
    for ((i = 1; i <= BROKERS; i++)); do
        write_node_config "$i" "$BROKERS" "$voters" "${ports[$((2 * i - 2))]}" "${ports[$((2 * i - 1))]}" \
            "${sasl_ports[$((i - 1))]:-}"
        if ((SASL_SSL)); then
            sasl_bootstrap+="${sasl_bootstrap:+,}127.0.0.1:${sasl_ports[$((i - 1))]}"
        fi
    done
    local -a scram=()
    if ((SASL_SSL)); then
        # Quoted values (the parser strips the quotes); a value cannot contain a comma.
        scram=(--add-scram "SCRAM-SHA-512=[name=\"$(<"$DIR/sasl-username")\",password=\"$(<"$DIR/sasl-password")\"]")
    fi
    echo "$BROKERS" >"$DIR/nodes"
    # From here on, a failed or interrupted start stops what it launched.
    START_NODES=()
    for ((i = 1; i <= BROKERS; i++)); do START_NODES+=("$i"); done
    trap start_abort EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local cluster_id
    cluster_id=$("$JAVA" "${TOOL_JVM[@]}" -cp "$KAFKA_HOME/lib/*" -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
        -Dkafka.logs.dir="$DIR/tool-logs" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    [[ -n "$cluster_id" ]] || die "StorageTool random-uuid failed"
    echo "$cluster_id" >"$DIR/cluster-id"
    # Format the nodes' storage in parallel (one JVM each).
    local -a fpids=()
    for ((i = 1; i <= BROKERS; i++)); do
        "$JAVA" "${TOOL_JVM[@]}" -cp "$KAFKA_HOME/lib/*" -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
            -Dkafka.logs.dir="$DIR/tool-logs" kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$(node_dir "$i")/server.properties" "${scram[@]}" \
            >"$(node_dir "$i")/format.log" 2>&1 &
        fpids+=($!)
    done
    for ((i = 1; i <= BROKERS; i++)); do
        if ! wait "${fpids[$((i - 1))]}"; then
            cat "$(node_dir "$i")/format.log" >&2
            die "formatting node $i failed"
        fi
    done

    for ((i = 1; i <= BROKERS; i++)); do
        launch_node "$i"
    done
    log "started $BROKERS node(s) in $DIR, waiting for metadata on $bootstrap"
    wait_ready "$bootstrap" "$BROKERS" "${START_NODES[@]}" || die "Kafka cluster did not come up"
    echo "$bootstrap" >"$DIR/bootstrap"
    if ((SASL_SSL)); then
        echo "$sasl_bootstrap" >"$DIR/sasl-bootstrap"
        log "SASL_SSL (SCRAM-SHA-512) listeners: $sasl_bootstrap (user $(<"$DIR/sasl-username"), CA $DIR/tls/ca.pem)"
    fi
    trap - EXIT INT TERM
    log "cluster ready in $((SECONDS - t0))s (Kafka $KAFKA_VERSION, $BROKERS node(s), cluster id $cluster_id)"
    echo "$bootstrap"
}

cmd_stop() {
    parse_dir_opts "$@"
    ((${#ARGS[@]} == 0)) || die "stop: unexpected argument ${ARGS[0]}"
    local n i nodes=()
    n=$(node_count)
    for ((i = 1; i <= n; i++)); do nodes+=("$i"); done
    if ((n == 0)) || ! [[ -d "$(node_dir 1)" ]]; then
        log "nothing to stop in $DIR"
        return 0
    fi
    stop_nodes "${nodes[@]}"
    log "stopped all nodes in $DIR"
}

node_arg() {
    ((${#ARGS[@]} == 1)) || die "$1: expected exactly one node number"
    local i=${ARGS[0]} n
    n=$(node_count)
    if ! [[ "$i" =~ ^[0-9]+$ ]] || ((i < 1 || i > n)); then
        die "$1: node must be 1..$n"
    fi
    NODE=$i
}

cmd_stop_node() {
    parse_dir_opts "$@"
    node_arg stop-node
    stop_nodes "$NODE"
    log "node $NODE stopped"
}

cmd_start_node() {
    parse_dir_opts "$@"
    node_arg start-node
    if node_pid "$NODE" >/dev/null; then
        log "node $NODE is already running"
        return 0
    fi
    [[ -f "$KAFKA_HOME/.complete" ]] || cmd_fetch
    launch_node "$NODE"
    local addr
    addr=$(<"$(node_dir "$NODE")/address")
    # Ready when this node itself answers metadata with itself included.
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        node_pid "$NODE" >/dev/null || { tail_node_log "$NODE" 60 >&2; die "node $NODE died during startup"; }
        if kcat -b "$addr" -L -t __kws_probe -m 3 -J 2>/dev/null |
            python3 -c 'import json,sys; n=int(sys.argv[1]); sys.exit(0 if any(b["id"]==n for b in json.load(sys.stdin)["brokers"]) else 1)' "$NODE" 2>/dev/null; then
            break
        fi
        if ((SECONDS >= deadline)); then
            tail_node_log "$NODE" 60 >&2
            die "node $NODE not ready after ${START_TIMEOUT}s"
        fi
        sleep 0.5
    done
    log "node $NODE running at $addr"
}

cmd_create_topic() {
    local partitions=1 rf="" rest=()
    while (($#)); do
        case $1 in
        --partitions) partitions=${2:?}; shift 2 ;;
        --replication-factor) rf=${2:?}; shift 2 ;;
        *) rest+=("$1"); shift ;;
        esac
    done
    parse_dir_opts "${rest[@]}"
    ((${#ARGS[@]} == 1)) || die "create-topic: expected exactly one topic name"
    [[ -f "$DIR/bootstrap" ]] || die "no cluster in $DIR"
    [[ -n "$rf" ]] || rf=$(($(node_count) >= 3 ? 3 : 1))
    [[ -f "$KAFKA_HOME/.complete" ]] || cmd_fetch
    # A single-file Java program against kafka-clients' Admin API (the CLI
    # tools live in the separate, heavy kafka-tools artifact).
    local src
    src=$(mktemp -d)/CreateTopic.java
    cat >"$src" <<'EOF2'
import java.util.*;
import org.apache.kafka.clients.admin.*;
public class CreateTopic {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(a[1], Integer.parseInt(a[2]), Short.parseShort(a[3]))))
                 .all().get();
        }
    }
}
EOF2
    "$JAVA" "${TOOL_JVM[@]}" -cp "$KAFKA_HOME/lib/*" -Dlog4j2.level=warn "$src" \
        "$(<"$DIR/bootstrap")" "${ARGS[0]}" "$partitions" "$rf" ||
        { rm -rf "$(dirname "$src")"; die "could not create topic ${ARGS[0]}"; }
    rm -rf "$(dirname "$src")"
    log "created topic ${ARGS[0]} (partitions=$partitions, replication factor=$rf)"
}

cmd_status() {
    parse_dir_opts "$@"
    local n i pid rc=1
    n=$(node_count)
    for ((i = 1; i <= n; i++)); do
        if pid=$(node_pid "$i"); then
            echo "node $i: running (pid $pid) at $(<"$(node_dir "$i")/address")"
            rc=0
        else
            echo "node $i: stopped"
        fi
    done
    [[ -f "$DIR/bootstrap" ]] && echo "bootstrap: $(<"$DIR/bootstrap")"
    return "$rc"
}

cmd_logs() {
    parse_dir_opts "$@"
    local n i
    n=$(node_count)
    ((n > 0)) || { log "no cluster in $DIR"; return 0; }
    for ((i = 1; i <= n; i++)); do tail_node_log "$i" 100; done
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
    fetch) cmd_fetch ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    stop-node) cmd_stop_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    status) cmd_status "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
    esac
}

main "$@"
