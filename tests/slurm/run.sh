#!/usr/bin/env bash
# A campaign on a real single-node Slurm cluster: munge, slurmctld and slurmd from Debian's
# packages, started here without systemd and stopped by process id. Four drives are
# declared as GRES nvme (plain files, each backed by a simulated drive in the drive list);
# `nvplan slurm` writes the campaign, submit.sh runs it as an array of four tasks and the
# merge after them, and the merged report is checked: four runs, four drive identities,
# summed IOPS equal to the sum of the runs, the task on the slow drive failed.
#
# Needs root (it installs slurmctld, slurmd, slurm-client and munge when missing); skips
# with a message when they cannot be installed (offline, not root).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

skip() {
    echo "tests/slurm: skipped: $*"
    exit 0
}

have() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; }
export PATH="$PATH:/usr/sbin:/sbin"
if ! have; then
    [ "$(id -u)" = 0 ] || skip "Slurm is not installed and installing it needs root"
    command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
    if ! { DEBIAN_FRONTEND=noninteractive timeout 180 apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1; }; then
        skip "slurmctld, slurmd, slurm-client and munge could not be installed (offline?)"
    fi
    have || skip "the Slurm packages installed but their programs are not on PATH"
fi
[ "$(id -u)" = 0 ] || skip "starting slurmd needs root"
# Slurm 22.05's slurmd always starts its cgroup plugin: on a cgroup-v2-only host that
# needs systemd's dbus.
if [ -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -S /run/dbus/system_bus_socket ]; then
    skip "this host has cgroup v2 only and no dbus, which slurmd 22.05 needs"
fi
id munge >/dev/null 2>&1 || skip "there is no munge user (the munge package makes it)"

NVPLAN="$ROOT/target/release/nvplan"
[ -x "$NVPLAN" ] || cargo build --release --bin nvplan

START=$(date +%s)
W=$(mktemp -d /tmp/nvplan-slurm.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    local rc=$?
    if [ -n "${SLURM_CONF:-}" ] && command -v scancel >/dev/null; then
        scancel --quiet --user=root 2>/dev/null || true
    fi
    # Stopped in reverse order of starting, each by its own process id.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "tests/slurm: process $pid did not stop on SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ $rc != 0 ]; then
        for log in "$W"/*.log "$W"/*.out "$W"/results/logs/*.log; do
            [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
        done
    fi
    rm -rf "$W"
    exit $rc
}
trap cleanup EXIT

# munge: a key of its own, its socket in the work directory, run as the munge user.
mkdir -p "$W/munge"
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$W/munge"
chmod 755 "$W/munge"
chmod 400 "$W/munge/munge.key"
setpriv --reuid=munge --regid=munge --init-groups munged -F --key-file="$W/munge/munge.key" \
    --socket="$W/munge/munge.socket" --pid-file="$W/munge/munged.pid" --seed-file="$W/munge/seed" \
    --log-file="$W/munge/munged.log" >"$W/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    [ -S "$W/munge/munge.socket" ] && break
    sleep 0.1
done
[ -S "$W/munge/munge.socket" ] || { echo "tests/slurm: munged did not start" >&2; cat "$W/munged.out" >&2 || true; exit 1; }

# Slurm: one node of four CPUs (config_overrides: even on a 2-core machine, so that the
# four tasks hold their four drives at once) and four nvme GRES backed by plain files.
HOST=$(hostname -s)
MEM=$(slurmd -C | head -n 1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
NODE="CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=$MEM"
mkdir -p "$W/etc" "$W/state" "$W/spool" "$W/drives"
touch "$W"/drives/nvme{0..3}
cat >"$W/etc/slurm.conf" <<EOF
ClusterName=nvplan
SlurmctldHost=$HOST
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$W/munge/munge.socket
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=4
GresTypes=nvme
NodeName=$HOST $NODE Gres=nvme:4 State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
echo "NodeName=$HOST Name=nvme File=$W/drives/nvme[0-3]" >"$W/etc/gres.conf"
echo "IgnoreSystemd=yes" >"$W/etc/cgroup.conf"
export SLURM_CONF="$W/etc/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" >"$W/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$W/slurmd.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = idle ] && break
    sleep 0.2
done
[ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = idle ] || { echo "tests/slurm: the node did not come up: $(sinfo 2>&1)" >&2; exit 1; }
echo "tests/slurm: cluster up in $(($(date +%s) - START)) s"

# The drives, in gres.conf's File= order: the fourth answers after 50 ms.
cat >"$W/drives.list" <<EOF
# nvme0 .. nvme3 of gres.conf
sim:serial=SLURM0
sim:serial=SLURM1
sim:serial=SLURM2
sim:serial=SLURM3,latency=50ms
EOF
"$NVPLAN" slurm tests/slurm/plan.yaml --drives 4 --results "$W/results" --drive-list "$W/drives.list" --nvplan "$NVPLAN"
set +e
timeout 300 sh "$W/results/submit.sh" --wait
rc=$?
set -e
[ $rc = 1 ] || { echo "tests/slurm: the merge exited $rc; 1 expected (the slow drive's task fails)" >&2; exit 1; }

python3 - "$W/results" "$HOST" <<'EOF'
import csv, json, sys
res, host = sys.argv[1], sys.argv[2]
m = json.load(open(f"{res}/merged/summary.json"))
runs = m["runs"]
assert m["kind"] == "nvplan-merge" and len(runs) == 4, f"{len(runs)} runs"
assert m["counts"] == {"pass": 3, "failed": 1, "incomplete": 0, "missing": 0}, m["counts"]
serials = sorted(r["identity"]["serial"] for r in runs)
assert serials == ["SLURM0", "SLURM1", "SLURM2", "SLURM3"], f"each task its own drive: {serials}"
assert len({r["identity"]["run_id"] for r in runs}) == 4
assert all(r["identity"]["host"] == host for r in runs)
failed = [r for r in runs if r["status"] == "failed"]
assert [r["identity"]["serial"] for r in failed] == ["SLURM3"], failed
tasks = [json.load(open(f"{res}/task-{k}/summary.json")) for k in range(4)]
ran = sum(w["iops"] for t in tasks for p in t["phases"] for w in p["workers"])
total = [t for t in m["totals"] if t["label"] == "rw"][0]
assert total["runs"] == 4 and abs(total["iops"] - ran) <= 1e-6 * ran, (total["iops"], ran)
rows = {r["serial"]: r["status"] for r in csv.DictReader(open(f"{res}/merged/runs.csv"))}
assert rows == {"SLURM0": "pass", "SLURM1": "pass", "SLURM2": "pass", "SLURM3": "failed"}, rows
junit = open(f"{res}/merged/junit.xml").read()
assert junit.count("<testsuite ") == 4 and f'hostname="{host}"' in junit
print(f"tests/slurm: 4 runs, 4 drives, {total['iops']:.0f} IOPS summed, SLURM3 failed: ok")
EOF
echo "tests/slurm: passed in $(($(date +%s) - START)) s"
