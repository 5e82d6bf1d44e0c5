#!/usr/bin/env bash
# The thesis's OLTP experiment (TPC-C 49 -> 110 tpmC by moving database
# containers off a disk-bound host) on a netns lab whose hosts have disks
# of their own (`herd lab up --disk-iops`).
#
# Stand-in for TPC-C: MariaDB (Debian's mariadb-server, run as root in its
# container: `mysqld --user=root`) under sysbench's oltp_read_write, one
# client per database in the root netns. Not PostgreSQL: its server runs
# as the `postgres` user, and where root lacks CAP_SYS_RESOURCE (this
# machine kind) CRIU cannot dump a process of another user, so it could
# not move here. sysbench counts transactions (18 queries each: 14 reads,
# 4 writes, a commit), not TPC-C's new-order transactions: compare the
# ratio after/before and policy/control, not the absolute numbers.
#
# Scenario (staircase): N databases are created and loaded on n1 first,
# idle; their clients start one per STEP seconds, so n1's disk load climbs
# in steps to a plateau. Every host is limited to IOPS (reads and writes
# each). The same staircase runs twice on one lab: control (`herd
# coordinator --policy none`) and `oltp-disk` (the thesis's six
# conditions, its baseline scaled to the lab's disk: disk_ops_baseline =
# 0.6 x IOPS). "before" is the plateau before the first decision,
# "after" the last AFTER seconds. Prints, per arm: tpm per database and
# overall, before and after; host disk ops over time with the migrations
# marked; client errors.
#
#   benches/oltp.sh            # as root, after scripts/setup; needs sysbench
#
# Settings (environment): OLTP_IOPS (100), OLTP_DBS (4), OLTP_STEP (30 s),
# OLTP_AFTER (60 s), OLTP_SETTLE (90 s: from the first decision to the
# after window), OLTP_THREADS (2 per client), OLTP_ROWS (10000),
# OLTP_OUT (/var/tmp/herd-oltp), OLTP_LAB (oltpb).
set -euo pipefail
cd "$(dirname "$0")/.."
HERD=${HERD:-$PWD/target/release/herd}
export HERD_AGENT_BIN=${HERD_AGENT_BIN:-$PWD/target/release/herd-agent}
export HERD_LAB=${OLTP_LAB:-oltpb}
unset HERD_CLUSTER
IOPS=${OLTP_IOPS:-100}
DBS=${OLTP_DBS:-4}
STEP=${OLTP_STEP:-30}
AFTER=${OLTP_AFTER:-60}
SETTLE=${OLTP_SETTLE:-90}
THREADS=${OLTP_THREADS:-2}
ROWS=${OLTP_ROWS:-10000}
OUT=${OLTP_OUT:-/var/tmp/herd-oltp}
# First decision once every client runs; "before" is the plateau up to it.
DELAY=$((DBS * STEP + 10))
LENGTH=$((DELAY + SETTLE + AFTER))
BASELINE=$((IOPS * 6 / 10))

for t in sysbench mmdebstrap python3; do
    command -v "$t" >/dev/null || { echo "oltp.sh: $t is missing (apt-get install $t)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "oltp.sh: run as root (a netns lab)" >&2; exit 2; }
[ -x "$HERD" ] || { echo "oltp.sh: $HERD missing: cargo build --release" >&2; exit 2; }

rm -rf "$OUT" && mkdir -p "$OUT"
"$HERD" lab down >/dev/null 2>&1 || true
trap '"$HERD" lab down >/dev/null 2>&1 || true' EXIT
"$HERD" lab up --nodes 3 --disk-iops "$IOPS" | tee "$OUT/lab.txt"
"$HERD" image import mariadb --debian mariadb-server --node n1 | tee "$OUT/image.txt"

# --init-file takes one statement per line.
SQL=$'CREATE USER IF NOT EXISTS sb@\'%\' IDENTIFIED BY \'sb\';\nGRANT ALL ON *.* TO sb@\'%\';\nCREATE DATABASE IF NOT EXISTS sbtest;'
# Native AIO off: Debian's server would use io_uring, which CRIU cannot dump.
MYSQLD="mkdir -p /run/mysqld && echo \"$SQL\" > /tmp/init.sql && exec mysqld --user=root \
--bind-address=0.0.0.0 --skip-name-resolve --init-file=/tmp/init.sql --innodb-use-native-aio=0 \
--innodb-buffer-pool-size=64M --max-connections=64"

sb() { # sb IP ARGS...: sysbench oltp_read_write against one database
    local ip=$1
    shift
    sysbench oltp_read_write --db-driver=mysql --mysql-host="$ip" --mysql-user=sb --mysql-password=sb \
        --tables=1 --table-size="$ROWS" "$@"
}

ip_of() { "$HERD" inspect "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["ip"])'; }

arm() { # arm POLICY: one staircase under POLICY into $OUT/POLICY
    local pol=$1 dir="$OUT/$1"
    mkdir -p "$dir"
    for i in $(seq 1 "$DBS"); do
        "$HERD" rm -f "db$i" >/dev/null 2>&1 || true
        "$HERD" run --node n1 --name "db$i" --net lab mariadb -- sh -c "$MYSQLD" >/dev/null
    done
    for i in $(seq 1 "$DBS"); do
        local ip
        ip=$(ip_of "db$i")
        # Ready once it answers (cleanup drops the table if there is one).
        for _ in $(seq 1 60); do
            sb "$ip" cleanup >/dev/null 2>&1 && break
            sleep 1
        done
        sb "$ip" prepare >"$dir/prepare-db$i.txt" 2>&1 || { cat "$dir/prepare-db$i.txt"; exit 1; }
    done
    local t0
    t0=$(date +%s.%N)
    echo "$t0" >"$dir/t0"
    "$HERD" coordinator --policy "$pol" --out "$dir" --duration "${LENGTH}s" \
        --window 20 --period 30 --delay "$DELAY" --cooldown 3600 --min-samples 10 --max-moves 2 \
        --policy-opt "disk_ops_baseline=$BASELINE" --policy-opt missing_samples_threshold=0.25 \
        >"$dir/coordinator.txt" 2>&1 &
    local coord=$! pids=()
    for i in $(seq 1 "$DBS"); do
        local start=$(((i - 1) * STEP)) ip
        ip=$(ip_of "db$i")
        (
            sleep "$start"
            echo "start $(date +%s.%N)" >"$dir/db$i.log"
            sb "$ip" --threads="$THREADS" --time=$((LENGTH - start)) --report-interval=5 run >>"$dir/db$i.log" 2>&1
            echo "exit $?" >>"$dir/db$i.log"
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    wait "$coord" || true
    "$HERD" ps >"$dir/ps.txt"
    for i in $(seq 1 "$DBS"); do "$HERD" rm -f "db$i" >/dev/null; done
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"
arm none
arm oltp-disk
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"

python3 - "$OUT" "$DBS" "$DELAY" "$STEP" "$LENGTH" "$AFTER" "$IOPS" <<'EOF'
import csv, os, re, sys
out, dbs, delay, step, length, after, iops = sys.argv[1], *map(int, sys.argv[2:])
before = ((dbs - 1) * step + 10, delay)
late = (length - after, length)

def arm(pol):
    d = os.path.join(out, pol)
    t0 = float(open(os.path.join(d, "t0")).read())
    per, errs = {}, {}
    for i in range(1, dbs + 1):
        text = open(os.path.join(d, f"db{i}.log")).read()
        start = float(re.search(r"^start (\S+)", text, re.M).group(1)) - t0
        pts = [(start + float(s), float(tps)) for s, tps in
               re.findall(r"^\[ *(\d+)s \] thds: \d+ tps: ([\d.]+)", text, re.M)]
        def tpm(w):
            v = [x for t, x in pts if w[0] < t <= w[1]]
            return 60 * sum(v) / len(v) if v else 0.0
        ign = re.search(r"ignored errors:\s+(\d+)", text)
        bad = re.search(r"^exit (\d+)", text, re.M)
        errs[f"db{i}"] = (int(bad.group(1)) if bad else -1, int(ign.group(1)) if ign else -1,
                          len(re.findall(r"FATAL", text)))
        per[f"db{i}"] = (tpm(before), tpm(late))
    hosts = {}
    with open(os.path.join(d, "hosts.csv")) as f:
        for r in csv.DictReader(f):
            b = int((float(r["time"]) - t0) // 10) * 10
            hosts.setdefault(b, {}).setdefault(r["host"], []).append(float(r["disk_ops_per_second"]))
    moves = []
    p = os.path.join(d, "migrations.csv")
    if os.path.exists(p):
        with open(p) as f:
            for r in csv.DictReader(f):
                if r["event"] == "moved":
                    moves.append((float(r["time"]) - t0, r["container"], r["from"], r["to"]))
    return per, errs, hosts, moves

res = {pol: arm(pol) for pol in ("none", "oltp-disk")}
print(f"\n## OLTP: {dbs} MariaDB containers under sysbench oltp_read_write, hosts limited to {iops} IOPS each")
print(f"before = {before[0]}-{before[1]} s (all clients on n1), after = {late[0]}-{late[1]} s; transactions per minute\n")
print("| arm | container | before tpm | after tpm | after/before | client exit, ignored errors, FATAL |")
print("|---|---|---|---|---|---|")
tot = {}
for pol, (per, errs, _, _) in res.items():
    b = sum(v[0] for v in per.values()); a = sum(v[1] for v in per.values())
    tot[pol] = (b, a)
    for c, (x, y) in per.items():
        print(f"| {pol} | {c} | {x:.0f} | {y:.0f} | {y / x if x else 0:.2f} | {errs[c]} |")
    print(f"| {pol} | **overall** | **{b:.0f}** | **{a:.0f}** | **{a / b if b else 0:.2f}** | |")
(nb, na), (pb, pa) = tot["none"], tot["oltp-disk"]
print(f"\noltp-disk after / control after: {pa / na if na else 0:.2f}; the thesis: 49 -> 110 tpmC (x{110 / 49:.2f})")
for pol, (_, _, hosts, moves) in res.items():
    print(f"\n### {pol}: host disk ops/s (10 s means), migrations marked\n")
    names = sorted({h for b in hosts.values() for h in b})
    print("| t (s) | " + " | ".join(names) + " | moves |")
    print("|---" * (len(names) + 2) + "|")
    for b in sorted(hosts):
        if b < 0 or b > length:
            continue
        m = ", ".join(f"{c} {f}->{t} at {ts:.0f} s" for ts, c, f, t in moves if b <= ts < b + 10)
        row = " | ".join(f"{sum(hosts[b].get(n, [0])) / max(len(hosts[b].get(n, [])), 1):.0f}" for n in names)
        print(f"| {b} | {row} | {m} |")
EOF
