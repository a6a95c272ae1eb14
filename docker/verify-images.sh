#!/usr/bin/env bash
# Smoke-tests the images docker/build-images.sh builds, on a docker network of its own, reaching the
# containers only through ports published on 127.0.0.1; removes every container and network it
# creates (also on failure or Ctrl-C).
#   postgres  primary (SYNC_STANDBY_NAMES=standby1) + streaming standby: a row written through the
#             primary's published port is on the standby, pg_stat_replication says sync, promote.
#   haproxy   a trivial config, answered on a published port.
#   garage    the one-node setup through `docker exec … garage` (status, layout assign/apply, key
#             create, bucket create/allow) and the S3 port answers.
#   pkgnode   data_dir /var/lib/pkgnode, 0.0.0.0:4242, SQLite: GET /__ping__ is 200.
# Usage: docker/verify-images.sh [postgres|haproxy|garage|pkgnode ...]   (default: all)
# Needs on the host: curl, and psql + pg_isready (PostgreSQL 15 client) for the postgres check.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PREFIX=${IMAGE_PREFIX:-pkgcluster}
VERSION=$(awk '
    /^\[/ { in_pkg = ($0 ~ /^\[workspace\.package\][[:space:]]*$/) ; next }
    in_pkg && /^[[:space:]]*version[[:space:]]*=/ {
        sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
    }' "$REPO/Cargo.toml")
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

WANTED=("$@")
[[ ${#WANTED[@]} -gt 0 ]] || WANTED=(postgres haproxy garage pkgnode)

RUN_ID=pkgv-$$
LABEL=pkgcluster.verify=$RUN_ID
NET=$RUN_ID
TMP=$(mktemp -d "${TMPDIR:-/tmp}/$RUN_ID.XXXXXX")
chmod 755 "$TMP"

cleanup() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL")
    [[ -z $ids ]] || docker rm -f -v $ids >/dev/null
    docker network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "verify: $*" >&2; }
fail() {
    echo "verify: FAILED: $*" >&2
    exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: until the command succeeds.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [[ $SECONDS -ge $deadline ]]; then
            echo "verify: $what: not after ${secs}s" >&2
            return 1
        fi
        sleep 0.5
    done
}

# run NAME [docker run options...] IMAGE [args...]: a detached, labelled container on NET.
run() {
    local name=$1
    shift
    docker run -d --name "$RUN_ID-$name" --label "$LABEL" --network "$NET" "$@" >/dev/null
}

# The host port a container port is published on (127.0.0.1 only).
host_port() { docker port "$RUN_ID-$1" "$2/tcp" | awk -F: '/^127\.0\.0\.1:/ && !n++ { print $2 }'; }

logs_on_failure() { docker logs "$RUN_ID-$1" 2>&1 | tail -n 40 >&2 || true; }

docker network create --label "$LABEL" "$NET" >/dev/null

verify_postgres() {
    local image=$PREFIX/postgres:$VERSION p s
    say "postgres: primary + synchronous standby"
    run pg-primary --network-alias pg-primary -e SYNC_STANDBY_NAMES=standby1 \
        -p 127.0.0.1::5432 "$image"
    p=$(host_port pg-primary 5432)
    wait_for 60 "primary accepting connections" "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$p" || fail "see above"
    run pg-standby -e PRIMARY_HOST=pg-primary -e STANDBY_NAME=standby1 -p 127.0.0.1::5432 "$image"
    s=$(host_port pg-standby 5432)
    wait_for 90 "standby accepting connections" "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$s" ||
        { logs_on_failure pg-standby; fail "standby"; }
    psql_p() { "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d postgres -Atc "$1"; }
    psql_s() { "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$s" -U postgres -d postgres -Atc "$1"; }
    sync_state() { [[ $(psql_p "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'") == sync ]]; }
    wait_for 30 "standby1 sync in pg_stat_replication" sync_state || fail "see above"
    say "postgres: pg_stat_replication: $(psql_p "SELECT application_name, client_addr, state, sync_state FROM pg_stat_replication")"
    say "postgres: primary settings: $(psql_p "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_standby_names','synchronous_commit','wal_level','max_wal_senders','hot_standby','listen_addresses')")"
    timeout 20 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d postgres \
        -c "CREATE TABLE verify (id int PRIMARY KEY, note text)" \
        -c "INSERT INTO verify VALUES (1, 'committed on the primary')" ||
        fail "write on the primary (a hang here means the synchronous standby never confirmed)"
    row_on_standby() { [[ $(psql_s "SELECT note FROM verify WHERE id = 1") == 'committed on the primary' ]]; }
    wait_for 10 "the row on the standby" row_on_standby || fail "see above"
    [[ $(psql_s "SELECT pg_is_in_recovery()") == t ]] || fail "the standby is not in recovery"
    say "postgres: the standby holds the row; read-only before promotion: $(psql_s "SHOW transaction_read_only")"
    docker exec "$RUN_ID-pg-standby" pg_ctl promote -w -D /var/lib/postgresql/data >/dev/null ||
        fail "pg_ctl promote"
    [[ $(psql_s "SELECT pg_is_in_recovery()") == f ]] || fail "still in recovery after promote"
    timeout 20 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$s" -U postgres -d postgres \
        -c "INSERT INTO verify VALUES (2, 'written on the promoted standby')" ||
        fail "write on the promoted standby"
    say "postgres: promoted; rows on the new primary: $(psql_s "SELECT count(*) FROM verify")"
    say "postgres: container user: $(docker exec "$RUN_ID-pg-primary" id)"
    # POSTGRES_DB on a primary without standbys
    run pg-db -e POSTGRES_DB=pkgs -p 127.0.0.1::5432 "$image"
    local d
    d=$(host_port pg-db 5432)
    wait_for 60 "POSTGRES_DB primary" "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$d" || fail "see above"
    "$PGBIN/psql" -X -h 127.0.0.1 -p "$d" -U postgres -d pkgs -Atc "SELECT current_database()" >/dev/null ||
        fail "POSTGRES_DB=pkgs was not created"
    say "postgres: OK"
}

verify_haproxy() {
    local image=$PREFIX/haproxy:$VERSION port cfg=$TMP/haproxy.cfg
    say "haproxy: trivial config"
    cat >"$cfg" <<'EOF'
global
    stats socket /run/haproxy/admin.sock mode 600 level admin
    stats socket ipv4@127.0.0.1:9999 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend ping
    bind :8080
    http-request return status 200 content-type text/plain string "haproxy ok\n" if { path /__ping__ }
    default_backend nothing
backend nothing
EOF
    chmod 644 "$cfg"
    run haproxy -v "$cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" -p 127.0.0.1::8080 "$image"
    port=$(host_port haproxy 8080)
    wait_for 20 "haproxy on 127.0.0.1:$port" curl -fsS "http://127.0.0.1:$port/__ping__" || fail "see above"
    say "haproxy: GET /__ping__ -> $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/__ping__"); /nothing -> $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nothing")"
    docker exec "$RUN_ID-haproxy" test -S /run/haproxy/admin.sock || fail "no runtime API socket in /run/haproxy"
    local info
    info=$(docker exec "$RUN_ID-haproxy" sh -c 'echo "show info" | nc 127.0.0.1 9999') ||
        fail "haproxy runtime API"
    grep -q '^Version:' <<<"$info" || fail "haproxy runtime API: show info printed: $info"
    say "haproxy: runtime API answers; $(docker exec "$RUN_ID-haproxy" haproxy -v | head -n 1); user $(docker exec "$RUN_ID-haproxy" id -un)"
    say "haproxy: OK"
}

verify_garage() {
    local image=$PREFIX/garage:$VERSION c=$RUN_ID-garage port id key access status
    say "garage: one-node setup"
    run garage -p 127.0.0.1::3900 -p 127.0.0.1::3903 "$image"
    g() { docker exec "$c" garage -c /etc/garage.toml "$@"; }
    node_id() { id=$(g node id -q 2>/dev/null) && [[ -n $id ]]; }
    wait_for 30 "garage node id" node_id || { logs_on_failure garage; fail "garage start"; }
    id=$(g node id -q)
    id=${id%%@*}
    g status >/dev/null || fail "garage status"
    g layout assign -z dc1 -c 1G "$id" >/dev/null || fail "garage layout assign"
    g layout apply --version 1 >/dev/null || fail "garage layout apply"
    key=$(g key create pkgnode) || fail "garage key create"
    access=$(awk -F': *' '/^Key ID:/ { print $2 }' <<<"$key" | tr -d ' ')
    [[ -n $access ]] || fail "garage key create printed no Key ID: $key"
    g bucket create pkgs >/dev/null || fail "garage bucket create"
    g bucket allow --read --write --owner pkgs --key pkgnode >/dev/null || fail "garage bucket allow"
    local info
    info=$(g bucket info pkgs) || fail "garage bucket info"
    grep -q pkgnode <<<"$info" || fail "garage bucket info does not show the key: $info"
    port=$(host_port garage 3900)
    # An anonymous request to the S3 API is answered (403 AccessDenied) by Garage itself.
    status=$(curl -sS -o "$TMP/s3.xml" -w '%{http_code}' "http://127.0.0.1:$port/pkgs?list-type=2") ||
        fail "S3 port 127.0.0.1:$port does not answer"
    [[ $status == 403 ]] && grep -q '<Code>AccessDenied</Code>' "$TMP/s3.xml" ||
        fail "S3 answered $status: $(cat "$TMP/s3.xml")"
    say "garage: S3 on 127.0.0.1:$port answers ($status AccessDenied anonymously); key $access"
    if command -v aws >/dev/null 2>&1; then
        local secret
        secret=$(awk -F': *' '/^Secret key:/ { print $2 }' <<<"$key" | tr -d ' ')
        echo hello >"$TMP/obj"
        AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=garage \
            aws --endpoint-url "http://127.0.0.1:$port" s3 cp "$TMP/obj" s3://pkgs/obj >/dev/null ||
            fail "aws s3 cp"
        say "garage: object written with the new key"
    fi
    status=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(host_port garage 3903)/health")
    say "garage: admin /health -> $status; $(g status 2>/dev/null | grep -c 'dc1') node(s) in zone dc1; user $(docker exec "$c" id -un)"
    say "garage: OK"
}

verify_pkgnode() {
    local image=$PREFIX/pkgnode:$VERSION port cfg=$TMP/node.toml
    say "pkgnode: SQLite node"
    cat >"$cfg" <<'EOF'
listen = "0.0.0.0:4242"
data_dir = "/var/lib/pkgnode"
EOF
    chmod 644 "$cfg"
    run pkgnode -v "$cfg:/etc/pkgnode/node.toml:ro" -p 127.0.0.1::4242 "$image"
    port=$(host_port pkgnode 4242)
    ping() { [[ $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/__ping__") == 200 ]]; }
    wait_for 30 "pkgnode GET /__ping__ 200 on 127.0.0.1:$port" ping || { logs_on_failure pkgnode; fail "pkgnode start"; }
    say "pkgnode: GET /__ping__ -> 200; data dir: $(docker exec "$RUN_ID-pkgnode" ls /var/lib/pkgnode | tr '\n' ' ')"
    docker exec "$RUN_ID-pkgnode" pkgnode list repos >/dev/null || fail "docker exec pkgnode list repos"
    say "pkgnode: admin command through docker exec (pkgnode list repos, PKGNODE_CONFIG) exits 0"
    say "pkgnode: OK"
}

for name in "${WANTED[@]}"; do
    docker image inspect "$PREFIX/$name:$VERSION" >/dev/null 2>&1 ||
        fail "no image $PREFIX/$name:$VERSION: run docker/build-images.sh"
    "verify_$name"
done
say "all OK: ${WANTED[*]}"
