#!/usr/bin/env bash
# ceph-down.sh DIR
# Project copy of /work/shared/ceph/ceph-down.sh, used by test/helpers/ceph.ts.
# Stops exactly the daemons started by ceph-up.sh DIR (by their pid files in
# DIR/run, and only if that pid's command line still names DIR/ceph.conf),
# one after the other (radosgw, osd, mgr, mon), then removes DIR.
# Changed here: SIGNAL (default KILL). The cluster is thrown away with DIR, so
# there is nothing to flush, and radosgw took 5-9 s to exit on TERM on this
# machine (osd and mon ~0.1 s). SIGNAL=TERM restores the graceful stop.
set -uo pipefail
DIR=${1:?usage: ceph-down.sh DIR}
SIGNAL=${SIGNAL:-KILL}
[ -d "$DIR" ] || { echo "ceph-down: $DIR does not exist" >&2; exit 0; }
DIR=$(cd "$DIR" && pwd)

# alive PID: exists and is not a zombie (daemonized ceph processes are
# reparented to pid 1, which may take a moment to reap them)
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

stop_one() {  # stop_one NAME
  local f="$DIR/run/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  # guard against a recycled pid: it must have been started with -c DIR/ceph.conf
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/ceph.conf" || return 0
  kill "-$SIGNAL" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do          # up to 10 s
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "ceph-down: $1 (pid $pid) did not exit on $SIGNAL in 10 s, sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null
  while alive "$pid"; do sleep 0.1; done
}

for name in client.rgw.a osd.0 mgr.x mon.a; do stop_one "$name"; done
rm -rf -- "$DIR"
