# Sourced by scripts/stack.sh: the optional authentication of the local stack (docs/security.md).
#
#   scripts/stack.sh up DIR --sasl-plain USER:PASS   adds a SASL_PLAINTEXT listener (mechanism
#                                                   PLAIN, one user) beside the PLAINTEXT one
#   scripts/stack.sh up DIR --redis-password PASS    redis-server requires PASS (requirepass)
#
# Secrets are never printed and never on a command line of a long-lived process: they live in
# files of mode 600 under DIR (kafka/server.properties, redis/redis.conf, kafka/kcat-sasl.conf)
# and in DIR/stack.auth.env, which clients source after DIR/stack.env to use the SASL listener
# and Redis AUTH (FLEET_KAFKA_BROKERS of the SASL listener, FLEET_KAFKA_SECURITY_PROTOCOL,
# FLEET_KAFKA_SASL_MECHANISM, FLEET_KAFKA_SASL_USERNAME, FLEET_KAFKA_SASL_PASSWORD,
# FLEET_REDIS_PASSWORD: the overrides of fleet's config). DIR/stack.env gains only
# FLEET_KAFKA_SASL_BROKERS=127.0.0.1:PORT.

SASL_USER=""
SASL_PASS=""
REDIS_PASS=""

# A secret usable inside the broker's JAAS string and redis.conf: printable, no quotes,
# backslashes or whitespace. The message never shows the value.
auth_check_secret() {  # WHAT VALUE
  local v=$2
  [ -n "$v" ] || die "$1: empty password"
  [[ "$v" =~ ^[[:graph:]]+$ ]] || die "$1: the password must be printable ASCII without whitespace"
  [[ "$v" == *[\"\'\\]* ]] && die "$1: the password may not contain quotes or backslashes"
  return 0
}

parse_up_options() {  # ARGS... (after `up DIR`)
  while [ $# -gt 0 ]; do
    case "$1" in
      --sasl-plain)
        [ $# -ge 2 ] || die "--sasl-plain needs USER:PASS"
        [[ "$2" == *:* ]] || die "--sasl-plain needs USER:PASS"
        SASL_USER=${2%%:*}; SASL_PASS=${2#*:}
        [[ "$SASL_USER" =~ ^[A-Za-z0-9._-]+$ ]] || die "--sasl-plain: USER must be 1+ of [A-Za-z0-9._-]"
        auth_check_secret --sasl-plain "$SASL_PASS"
        shift 2 ;;
      --redis-password)
        [ $# -ge 2 ] || die "--redis-password needs PASS"
        REDIS_PASS=$2
        auth_check_secret --redis-password "$REDIS_PASS"
        shift 2 ;;
      *) die "unknown option for up (known: --sasl-plain USER:PASS, --redis-password PASS)" ;;
    esac
  done
}

# What the options ask for, as a digest (compared on reuse; the secrets stay out of it in clear).
auth_options_id() {
  printf 'sasl=%s:%s redis=%s' "$SASL_USER" "$SASL_PASS" "$REDIS_PASS" | sha256sum | cut -d' ' -f1
}

# True when the stack in DIR was started with the same options (no options: no auth file).
auth_options_match() {  # DIR
  local want have=""
  want=$(auth_options_id)
  [ -f "$1/stack.opts" ] && have=$(cat "$1/stack.opts")
  [ "$want" = "$have" ] || { [ -z "$SASL_USER$REDIS_PASS" ] && [ ! -f "$1/stack.opts" ]; }
}

# redis-cli with the stack's password (from DIR/stack.auth.env) in its environment, not argv.
redis_cli_auth() {  # DIR ARGS...
  local dir=$1 pass=""; shift
  [ -f "$dir/stack.auth.env" ] && pass=$(env_get "$dir/stack.auth.env" FLEET_REDIS_PASSWORD)
  if [ -n "$pass" ]; then REDISCLI_AUTH=$pass redis-cli "$@"; else redis-cli "$@"; fi
}

# The lines server.properties gains for the SASL listener (written to a mode-600 file).
sasl_listener_properties() {  # BROKER_PORT CONTROLLER_PORT SASL_PORT
  cat <<EOF

# SASL_PLAINTEXT listener (scripts/stack.sh up --sasl-plain): mechanism PLAIN, one user.
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2,SASL_PLAINTEXT://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$1,SASL_PLAINTEXT://127.0.0.1:$3
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASS";
EOF
}

# Answers metadata over the SASL listener with the configured user.
sasl_ok() {  # DIR SASL_PORT
  local md
  port_open "$2" || return 1
  md=$(kcat -F "$1/kafka/kcat-sasl.conf" -L -b "127.0.0.1:$2" -m 5 2>/dev/null) || return 1
  [[ "$md" == *"broker 1 at 127.0.0.1:$2"* ]]
}

write_kcat_sasl_conf() {  # DIR
  (umask 077; cat >"$1/kafka/kcat-sasl.conf" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanisms=PLAIN
sasl.username=$SASL_USER
sasl.password=$SASL_PASS
EOF
  )
}

# DIR/stack.auth.env (mode 600) and DIR/stack.opts; prints the stack.env lines to add.
write_auth_env() {  # DIR SASL_PORT
  local dir=$1 sport=$2
  echo "$(auth_options_id)" >"$dir/stack.opts"
  rm -f "$dir/stack.auth.env"
  [ -n "$SASL_USER$REDIS_PASS" ] || { rm -f "$dir/stack.opts"; return 0; }
  (umask 077; {
    echo "# Written by scripts/stack.sh up: source after stack.env for the SASL listener and Redis AUTH. Secret."
    if [ -n "$SASL_USER" ]; then
      echo "FLEET_KAFKA_BROKERS=127.0.0.1:$sport"
      echo "FLEET_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"
      echo "FLEET_KAFKA_SASL_MECHANISM=PLAIN"
      echo "FLEET_KAFKA_SASL_USERNAME=$SASL_USER"
      echo "FLEET_KAFKA_SASL_PASSWORD=$SASL_PASS"
    fi
    [ -n "$REDIS_PASS" ] && echo "FLEET_REDIS_PASSWORD=$REDIS_PASS"
    true
  } >"$dir/stack.auth.env.tmp")
  mv "$dir/stack.auth.env.tmp" "$dir/stack.auth.env"
}
