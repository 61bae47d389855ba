#!/usr/bin/env bash
# A throwaway single-node Ceph cluster on loopback for the S3 tests and bench/remote.ts:
# one monitor, one memstore OSD (data in RAM), a RADOS Gateway (beast) on a free loopback port,
# no authentication (`auth * = none`), pools of size 1. Everything lives under one run directory.
#
#   scripts/ceph.sh start   start the cluster (if not running) and print its S3 environment
#   scripts/ceph.sh env     print the environment of the running cluster (eval-able `export` lines)
#   scripts/ceph.sh stop    stop the daemons this script started (by their pid files) and remove the run dir
#   scripts/ceph.sh status  exit 0 when the gateway answers
#   scripts/ceph.sh mb <b>  create bucket <b> on the running cluster
#
# CORAL_CEPH_DIR picks the run directory (default /tmp/coral-ceph-<uid>-<hash of the checkout path>). Each daemon writes a pid file
# there; `stop` signals those pids only. Every wait is bounded; a failure prints the daemon's log tail.
# Needs Debian's radosgw, ceph-mon, ceph-osd and ceph-common (scripts/setup.sh installs them).
set -euo pipefail

# One cluster per checkout by default, so test runs in two checkouts never stop each other's cluster.
REPO_TAG=$(cd "$(dirname "$0")/.." && pwd -P | md5sum | cut -c1-8)
RUN="${CORAL_CEPH_DIR:-/tmp/coral-ceph-$(id -u)-$REPO_TAG}"
CONF="$RUN/ceph.conf"
STATE="$RUN/env"
# Fixed test credentials of the S3 user this script creates (a throwaway cluster on loopback only).
ACCESS_KEY="CORALTESTACCESSKEY01"
SECRET_KEY="coral-test-secret-key-0123456789abcdefghij"
USER_ID="coral-test"

die() {
  echo "ceph.sh: $*" >&2
  exit 1
}

log_tail() {
  for f in "$RUN"/log/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 15 lines)" >&2
    tail -n 15 "$f" >&2 || true
  done
}

fail() {
  echo "ceph.sh: $*" >&2
  log_tail
  stop_daemons
  exit 1
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Runs "$@" until it succeeds or `secs` seconds pass.
wait_for() {
  local secs="$1" what="$2"
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.5
  done
  echo "ceph.sh: $what ready after $((SECONDS - start_s))s" >&2
}

cephc() {
  timeout 20 ceph -c "$CONF" --connect-timeout 15 "$@"
}

rgw_up() {
  # Any HTTP answer (RGW answers an anonymous GET / with a bucket listing or 403) means it serves.
  node -e '
    const r = require("http").get({ host: "127.0.0.1", port: +process.argv[1], path: "/", timeout: 2000 },
      (res) => { res.resume(); process.exit(0); });
    r.on("error", () => process.exit(1)); r.on("timeout", () => { r.destroy(); process.exit(1); });' "$(cat "$RUN/rgw.port")"
}

uuid() {
  cat /proc/sys/kernel/random/uuid
}

osd_up() {
  cephc osd dump 2>/dev/null | grep -Eq '^osd\.0 up +in'
}

pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

print_env() {
  [ -f "$STATE" ] || die "no cluster under $RUN (run \`scripts/ceph.sh start\`)"
  cat "$STATE"
}

stop_daemons() {
  # TERM the gateway and the monitor; the memstore OSD gets KILL (a clean shutdown would write its
  # whole in-memory store to disk, and the data is throwaway by design).
  local pids=()
  for name in rgw osd mon; do
    local f="$RUN/run/$name.pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      if [ "$name" = osd ]; then kill -KILL "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
      pids+=("$pid")
    fi
  done
  local end=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
}

start() {
  command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null ||
    die "ceph-mon, ceph-osd and radosgw are not installed (scripts/setup.sh installs them)"
  if [ -f "$STATE" ] && pid_alive "$RUN/run/rgw.pid" && pid_alive "$RUN/run/osd.pid" && pid_alive "$RUN/run/mon.pid"; then
    print_env
    return
  fi
  [ -d "$RUN" ] && { stop_daemons; rm -rf "$RUN"; }
  mkdir -p "$RUN"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
  start_s=$SECONDS
  local fsid mon_port rgw_port
  fsid=$(uuid)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  echo "$rgw_port" >"$RUN/rgw.port"
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon initial members = a
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
# Without authentication there is no session key, so msgr2 cannot use its "secure" mode: crc only.
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
run dir = $RUN/run
admin socket = $RUN/run/\$name.asok
log file = $RUN/log/\$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0

[mon.a]
mon data = $RUN/mon/ceph-a
pid file = $RUN/run/mon.pid

[osd.0]
osd data = $RUN/osd/ceph-0
osd objectstore = memstore
memstore device bytes = 12884901888
osd max object name len = 460
osd max object namespace len = 64
pid file = $RUN/run/osd.pid

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $RUN/rgw
rgw zone = default
rgw thread pool size = 64
rgw max chunk size = 4194304
rgw enable usage log = false
pid file = $RUN/run/rgw.pid
log file = $RUN/log/rgw.log
EOF
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$RUN/monmap" >/dev/null ||
    fail "monmaptool failed"
  timeout 30 ceph-mon -c "$CONF" -i a --mkfs --monmap "$RUN/monmap" >"$RUN/log/mkfs-mon.out" 2>&1 ||
    fail "ceph-mon --mkfs failed: $(tail -3 "$RUN/log/mkfs-mon.out")"
  # The daemons must not inherit fd 9 (the start lock), or they would hold it for their whole life.
  ceph-mon -c "$CONF" -i a 9>&- 2>>"$RUN/log/mon.out" || fail "ceph-mon did not start"
  wait_for 30 "monitor" cephc mon stat || fail "the monitor did not answer within 30 s"

  local uuid
  uuid=$(uuid)
  local id
  id=$(cephc osd new "$uuid") || fail "ceph osd new failed"
  [ "$id" = 0 ] || fail "unexpected osd id $id"
  timeout 60 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >"$RUN/log/mkfs-osd.out" 2>&1 ||
    fail "ceph-osd --mkfs failed: $(tail -3 "$RUN/log/mkfs-osd.out")"
  ceph-osd -c "$CONF" -i 0 9>&- 2>>"$RUN/log/osd.out" || fail "ceph-osd did not start"
  wait_for 60 "osd" osd_up || fail "the OSD did not come up within 60 s"

  # radosgw forks once it reached the monitor; `timeout` bounds that wait (the daemon child outlives it).
  timeout 60 radosgw -c "$CONF" -n client.rgw.a 9>&- 2>>"$RUN/log/rgw.out" || fail "radosgw did not start"
  wait_for 90 "gateway" rgw_up || fail "the gateway did not answer on 127.0.0.1:$rgw_port within 90 s"

  timeout 60 radosgw-admin -c "$CONF" user create --uid="$USER_ID" --display-name="coral tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$RUN/log/user.out" 2>&1 ||
    fail "radosgw-admin user create failed: $(tail -3 "$RUN/log/user.out")"
  cat >"$STATE" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export CORAL_CEPH_DIR=$RUN
EOF
  print_env
}

case "${1:-}" in
  start)
    # Test workers may ask for the cluster at the same moment: one starts it, the others reuse it.
    exec 9>"$RUN.lock"
    flock -w 120 9 || die "timed out waiting for another \`scripts/ceph.sh start\` (lock $RUN.lock)"
    start
    ;;
  env) print_env ;;
  status) [ -f "$STATE" ] && rgw_up ;;
  mb)
    [ -n "${2:-}" ] || die "usage: scripts/ceph.sh mb <bucket>"
    eval "$(print_env)"
    cd "$(dirname "$0")/.."
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true node -e '
      const { S3Client, CreateBucketCommand } = require("@aws-sdk/client-s3");
      const c = new S3Client({ endpoint: process.env.AWS_ENDPOINT_URL, forcePathStyle: true });
      c.send(new CreateBucketCommand({ Bucket: process.argv[1] })).then(
        () => console.log("created bucket " + process.argv[1]),
        (e) => { console.error("ceph.sh: " + e.name + ": " + e.message); process.exit(1); });' "$2"
    ;;
  stop)
    [ -d "$RUN" ] || exit 0
    exec 9>"$RUN.lock"
    flock -w 120 9 || die "timed out waiting for the lock $RUN.lock"
    stop_daemons
    rm -rf "$RUN" "$RUN.lock"
    ;;
  *) die "usage: scripts/ceph.sh start|env|status|mb <bucket>|stop" ;;
esac
