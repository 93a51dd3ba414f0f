#!/usr/bin/env bash
# A throwaway S3 server for the tests: OpenStack Swift (one replica, all in one) with the s3api
# and tempauth middlewares, on loopback, from Debian's packages.
#
#   scripts/swift-s3.sh start   install what is missing, start, wait until S3 calls work
#   scripts/swift-s3.sh stop    stop what `start` started (by the PIDs it recorded)
#   scripts/swift-s3.sh env     print the TEST_S3_* exports for this instance
#
# S3: http://127.0.0.1:$PORT, path-style, region us-east-1, access key "test:tester", secret
# "testing". Everything (config, rings, data, logs, PIDs) lives under $BASE, so two instances
# with different BASE and ports run side by side.
#
# Environment: BASE (/tmp/files-api-swift) · PORT (8080) · MEMCACHED_PORT (11211) ·
# OBJ_PORT (6200) · CONT_PORT (6201) · ACCT_PORT (6202) · START_TIMEOUT seconds (120)
set -euo pipefail

BASE=${BASE:-/tmp/files-api-swift}
PORT=${PORT:-8080}
MEMCACHED_PORT=${MEMCACHED_PORT:-11211}
OBJ_PORT=${OBJ_PORT:-6200}
CONT_PORT=${CONT_PORT:-6201}
ACCT_PORT=${ACCT_PORT:-6202}
START_TIMEOUT=${START_TIMEOUT:-120}

ACCESS_KEY='test:tester'
SECRET_KEY='testing'
REGION='us-east-1'
ENDPOINT="http://127.0.0.1:$PORT"
SERVICES=(memcached object container account proxy)

log() { echo "swift-s3: $*" >&2; }
die() { log "$*"; exit 1; }

# `start` wipes $BASE: refuse anything that is not a dedicated directory.
case "$BASE" in '' | / | /tmp | /tmp/ | "$HOME" | "$HOME/") die "refusing BASE=$BASE (start deletes it)" ;; esac

install_packages() {
  if command -v swift-proxy-server >/dev/null && command -v swift-object-server >/dev/null \
    && command -v swift-container-server >/dev/null && command -v swift-account-server >/dev/null \
    && command -v swift-ring-builder >/dev/null && command -v memcached >/dev/null; then
    return
  fi
  log "installing Debian packages swift, swift-proxy, swift-account, swift-container, swift-object, memcached"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq)
  [ "$(id -u)" = 0 ] || apt=(sudo "${apt[@]}")
  if ! "${apt[@]}" install -y --no-install-recommends \
    swift swift-proxy swift-account swift-container swift-object memcached >"$BASE.apt.log" 2>&1; then
    # The package lists may be missing or stale on a fresh machine.
    "${apt[@]}" update >>"$BASE.apt.log" 2>&1 || true
    "${apt[@]}" install -y --no-install-recommends \
      swift swift-proxy swift-account swift-container swift-object memcached >>"$BASE.apt.log" 2>&1 \
      || { cat "$BASE.apt.log" >&2; die "apt-get install failed"; }
  fi
  rm -f "$BASE.apt.log"
}

port_in_use() {
  # bash's /dev/tcp: succeeds when something accepts on the port.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
  mkdir -p "$BASE"/{etc,srv/node/d1,log,run}
  cat >"$BASE/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = files-api-test
swift_hash_path_prefix = files-api-test

[storage-policy:0]
name = default
default = yes
EOF
  # The three rings (2^6 partitions, 1 replica, one device on loopback each) in one Python
  # process: swift-ring-builder would pay Swift's import time nine times over.
  "$(swift_python)" - "$BASE/etc" "$OBJ_PORT" "$CONT_PORT" "$ACCT_PORT" <<'PY'
import sys
from swift.common.ring import RingBuilder

etc, ports = sys.argv[1], sys.argv[2:5]
for name, port in zip(("object", "container", "account"), ports):
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 1})
    builder.rebalance()
    builder.save(f"{etc}/{name}.builder")
    builder.get_ring().save(f"{etc}/{name}.ring.gz")
PY
  local ring port
  for ring in object:$OBJ_PORT container:$CONT_PORT account:$ACCT_PORT; do
    port=${ring#*:}
    ring=${ring%%:*}
    cat >"$BASE/etc/$ring-server.conf" <<EOF
[DEFAULT]
devices = $BASE/srv/node
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
swift_dir = $BASE/etc
user = $(id -un)
log_name = $ring
recon_cache_path = $BASE/run

[pipeline:main]
pipeline = $ring-server

[app:$ring-server]
use = egg:swift#$ring
EOF
  done
  # s3api before tempauth (it turns S3 signatures into a Swift identity); copy/slo/dlo after, as
  # s3api's multipart uploads and CopyObject need them.
  cat >"$BASE/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
workers = 0
swift_dir = $BASE/etc
user = $(id -un)
log_name = proxy

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
EOF
}

# The interpreter Swift was installed for (its scripts' shebang), which can import `swift`.
swift_python() {
  sed -n '1s/^#! *//p' "$(command -v swift-ring-builder)"
}

# Starts one process in the background, detached from our stdin/stdout, and records its PID.
spawn() {
  local name=$1
  shift
  nohup "$@" </dev/null >"$BASE/log/$name.log" 2>&1 &
  echo $! >"$BASE/run/$name.pid"
}

# A signed S3 round trip (ListBuckets, CreateBucket, PutObject, GetObject, DeleteObject,
# DeleteBucket) with SigV4 from Python's standard library (Swift's own interpreter, so no extra
# dependency). /healthcheck only proves the proxy is up; this proves auth, memcached and the
# account, container and object servers all answer.
s3_round_trip() {
  "$(swift_python)" - "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" "$REGION" <<'PY'
import datetime, hashlib, hmac, sys, urllib.error, urllib.parse, urllib.request, uuid

endpoint, access_key, secret_key, region = sys.argv[1:5]
host = urllib.parse.urlsplit(endpoint).netloc

def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

def call(method, path, body=b""):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = sign(sign(sign(sign(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    del headers["host"]
    request = urllib.request.Request(endpoint + path, data=body or None, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()

bucket = "swift-s3-ready-" + uuid.uuid4().hex[:12]
try:
    call("GET", "/")
    call("PUT", f"/{bucket}")
    call("PUT", f"/{bucket}/probe", b"ready")
    assert call("GET", f"/{bucket}/probe") == b"ready", "object read back differs"
    call("DELETE", f"/{bucket}/probe")
    call("DELETE", f"/{bucket}")
except urllib.error.HTTPError as error:
    sys.exit(f"{error.code} {error.reason}: {error.read()[:300]!r}")
except Exception as error:  # connection refused while servers start, etc.
    sys.exit(str(error))
PY
}

print_env() {
  cat <<EOF
export TEST_S3_ENDPOINT=$ENDPOINT
export TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY
export TEST_S3_SECRET_ACCESS_KEY=$SECRET_KEY
export TEST_S3_REGION=$REGION
EOF
}

start() {
  local t0=$SECONDS name port
  [ -f "$BASE/run/proxy.pid" ] && kill -0 "$(cat "$BASE/run/proxy.pid")" 2>/dev/null \
    && die "already running from $BASE (run: BASE=$BASE $0 stop)"
  mkdir -p "$(dirname "$BASE")"
  install_packages
  for port in "$PORT" "$MEMCACHED_PORT" "$OBJ_PORT" "$CONT_PORT" "$ACCT_PORT"; do
    port_in_use "$port" && die "port $port is already in use (set PORT, MEMCACHED_PORT, OBJ_PORT, CONT_PORT, ACCT_PORT)"
  done
  rm -rf "$BASE"
  write_config

  # tempauth keeps its tokens, and s3api some upload state, in memcached.
  spawn memcached memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -m 64 -U 0 $([ "$(id -u)" = 0 ] && echo -u root)
  for name in object container account proxy; do
    spawn "$name" "swift-$name-server" "$BASE/etc/$name-server.conf" -v
  done

  local deadline=$((SECONDS + START_TIMEOUT)) last_error=''
  until curl -fsS -o /dev/null "$ENDPOINT/healthcheck" 2>/dev/null; do
    ((SECONDS < deadline)) || { tail -n 20 "$BASE"/log/*.log >&2; stop; die "no /healthcheck answer within ${START_TIMEOUT}s"; }
    for name in "${SERVICES[@]}"; do
      kill -0 "$(cat "$BASE/run/$name.pid")" 2>/dev/null \
        || { tail -n 20 "$BASE/log/$name.log" >&2; stop; die "$name exited during start (log above)"; }
    done
    sleep 0.2
  done
  until last_error=$(s3_round_trip 2>&1); do
    ((SECONDS < deadline)) || { tail -n 20 "$BASE"/log/*.log >&2; stop; die "S3 calls still fail after ${START_TIMEOUT}s: $last_error"; }
    sleep 0.3
  done
  log "S3 endpoint $ENDPOINT ready after $((SECONDS - t0))s (access key $ACCESS_KEY, secret $SECRET_KEY, region $REGION, data in $BASE)"
  echo "$ENDPOINT"
}

stop() {
  local name pid pids=()
  for name in proxy account container object memcached; do
    [ -f "$BASE/run/$name.pid" ] || continue
    pid=$(cat "$BASE/run/$name.pid")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$BASE/run/$name.pid"
  done
  # Wait (up to ~5 s) so the ports are free when this returns, then insist.
  for _ in $(seq 1 50); do
    local alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    pids=("${alive[@]}")
    ((${#pids[@]} == 0)) && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  return 0
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env   (environment: BASE, PORT, MEMCACHED_PORT, OBJ_PORT, CONT_PORT, ACCT_PORT)" >&2; exit 2 ;;
esac
