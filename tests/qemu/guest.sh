#!/bin/bash
# Runs inside the QEMU guest (chrooted into the host's root, read-only): one stage of
# tests/qemu/run.sh. Prints `-- ok: NAME` / `-- FAIL: NAME` per check; exits with the
# number of failures.
set -u
stage=$1 ROOT=$2 OUT=$3
cd "$ROOT"
# The host's root is read-only here; scratch files go to the shared output directory.
mkdir -p "$OUT/tmp"
export TMPDIR=$OUT/tmp HOME=$OUT/tmp RUST_BACKTRACE=1
NV=$ROOT/target/release/nvplan
fails=0
check() {
    local name=$1; shift
    echo "== $name"
    if "$@"; then echo "-- ok: $name"; else echo "-- FAIL: $name"; fails=$((fails + 1)); fi
}

# PCI address of the NVMe function with this serial (QEMU's `serial=`), from the kernel's
# nvme driver, or from nvplan once vfio-pci holds it.
addr_of() {
    local d
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/class")" = 0x010802 ] || continue
        if grep -q "^$1 *$" "$d"/nvme/nvme*/serial 2>/dev/null; then basename "$d"; return; fi
    done
}

# `nvplan bind ADDR` fails and says WHY.
refused_for() {
    local why=$1 out rc
    out=$($NV bind "$2" 2>&1); rc=$?
    echo "$out"
    [ $rc -ne 0 ] && grep -qi "$why" <<<"$out"
}

# Starts a minute of writes on the function, removes it from the PCI bus while they run
# (the kernel then asks vfio-pci's user for the device back), and checks that the removal
# completes and nvplan ends with its report. The function comes back with a rescan.
unplug() {
    local addr=$1 pid t0 rc
    $NV run tests/qemu/unplug-plan.yaml --target "vfio:$addr" --quiet --out "$OUT/unplug" > "$OUT/unplug.log" 2>&1 &
    pid=$!
    sleep 5
    t0=$(date +%s)
    timeout 30 sh -c "echo 1 > /sys/bus/pci/devices/$addr/remove" || { echo "removal hung"; kill -9 $pid; return 1; }
    echo "removal took $(( $(date +%s) - t0 )) s"
    for _ in $(seq 60); do kill -0 $pid 2>/dev/null || break; sleep 1; done
    if kill -0 $pid 2>/dev/null; then echo "nvplan still running 60 s after the removal"; kill -9 $pid; return 1; fi
    wait $pid; rc=$?
    cat "$OUT/unplug.log"
    echo 1 > /sys/bus/pci/rescan
    # The run failed (its device went away) and still wrote its report.
    [ $rc -ne 0 ] && [ -f "$OUT/unplug/summary.json" ]
}

# Runs a command for at most LIMIT seconds; one that overruns is killed after its threads'
# waits (kernel wait channel and stack) and the kernel's last messages are printed.
run_watched() {
    local limit=$1 pid t
    shift
    "$@" &
    pid=$!
    for _ in $(seq "$limit"); do kill -0 $pid 2>/dev/null || break; sleep 1; done
    if kill -0 $pid 2>/dev/null; then
        echo "  still running after $limit s; its threads wait in:"
        for t in /proc/$pid/task/*; do
            echo "    $(cat "$t/comm"): $(cat "$t/wchan")"
            head -6 "$t/stack" 2>/dev/null | sed 's/^/        /'
        done
        dmesg | tail -30 | sed 's/^/  dmesg: /'
        kill -9 $pid
    fi
    wait $pid
}

# Runs a plan; a plan that fails runs once more, and the first failure stays in the log: a
# guard against the emulator itself stalling for over a second on a loaded build machine,
# which a plan's slow_latency (1 s by default) would report.
run_plan() {
    local plan=$1 q=$2 name=$3 scale=0.1
    shift 3
    # The rest: more options for nvplan run (--power).
    # Hours of I/O run shorter still: JEDEC's 12 h in 22 s, an hour in 18 s, the SNIA
    # matrix's 56 minutes in 3.4 s.
    case $plan in
    plans/jedec-enterprise-endurance.yaml) scale=0.0005 ;;
    plans/snia-iops-matrix.yaml) scale=0.001 ;;
    plans/seed/full_disk_random_write.yaml) scale=0.005 ;;
    esac
    run_watched 300 $NV run "$plan" --target "vfio:$q" --time-scale $scale --quiet --out "$OUT/plans/$name" "$@" && return 0
    python3 -c "import json; s=json.load(open('$OUT/plans/$name/summary.json')); [print('  first try:', p['name'], w['name'], w['error'], w['error_message']) for p in s['phases'] for w in p['workers'] if w['error']]" 2>/dev/null
    echo "  running $plan once more"
    dmesg | grep -iE "vfio|iommu|pciehp|nvme" | tail -20 | sed 's/^/  dmesg: /'
    run_watched 300 $NV run "$plan" --target "vfio:$q" --time-scale $scale --quiet --out "$OUT/plans/$name-again" "$@"
}

case $stage in
main)
    Q0=$(addr_of NVPLANQ0); Q1=$(addr_of NVPLANQ1); Q2=$(addr_of NVPLANQ2)
    echo "NVPLANQ0 at $Q0, NVPLANQ1 at $Q1, NVPLANQ2 at $Q2"
    check "devices lists the three functions with the nvme driver" bash -c "$NV devices | tee /dev/stderr | grep -c 'QEMU NVMe' | grep -qx 3"
    ns2=$(basename "$(ls -d /sys/bus/pci/devices/"$Q1"/nvme/nvme*/nvme*n2 | head -1)")
    mkswap "/dev/$ns2" >/dev/null && swapon "/dev/$ns2"
    check "bind refuses a function holding swap" refused_for swap "$Q1"
    check "bind refused: still on nvme" bash -c "[ \"\$(basename \"\$(readlink /sys/bus/pci/devices/$Q1/driver)\")\" = nvme ]"
    swapoff "/dev/$ns2"
    check "bind moves the three functions to vfio-pci" $NV bind "$Q0" "$Q1" "$Q2"
    check "devices shows vfio-pci" bash -c "$NV devices | tee /dev/stderr | grep -c vfio-pci | grep -qx 3"
    check "unbind gives a function back to nvme" bash -c "$NV unbind $Q0 && sleep 1 && ls /sys/bus/pci/devices/$Q0/nvme >/dev/null"
    check "bind takes it again" $NV bind "$Q0"
    check "smoke on NVPLANQ0 by address" $NV smoke --target "vfio:$Q0" --out "$OUT/smoke-q0" --size 16MiB
    check "smoke on NVPLANQ1 by serial" $NV smoke --target vfio:NVPLANQ1 --out "$OUT/smoke-q1" --size 16MiB
    # The driver test suites, on the three controllers (each test takes the first with the
    # namespaces and MDTS it asks for), leaving out the tests listed in tests/qemu/sim-only.txt.
    export NVPLAN_TEST_TARGET="vfio:$Q0,vfio:$Q1,vfio:$Q2"
    suites="driver_io metamode admin nvm_commands power_reset verification ioworker_lifecycle ioworker"
    [ -s "$OUT/suites" ] && suites=$(cat "$OUT/suites")
    for suite in $suites; do
        bin=$(grep "/deps/$suite-" "$OUT/../test-binaries" | head -1)
        skips=()
        # (No process substitution: the guest's devtmpfs has no /dev/fd.)
        for name in $(sed -n "s/^$suite::\([a-z0-9_]*\) .*/\1/p" tests/qemu/sim-only.txt); do skips+=(--skip "$name"); done
        check "test suite $suite on QEMU" timeout 600 "$bin" --test-threads=1 --exact "${skips[@]}"
    done
    unset NVPLAN_TEST_TARGET
    # Every plan under plans/ at a tenth of its durations, but those listed (plans named
    # with NVPLAN_QEMU_PLANS run even when listed).
    plans="plans/*.yaml plans/seed/*.yaml plans/metamode/*.yaml" named=
    [ -e "$OUT/plans-list" ] && plans=$(cat "$OUT/plans-list") named=1
    for plan in $plans; do
        [ -z "$named" ] && grep -q "^plan::$plan " tests/qemu/sim-only.txt && continue
        # Plans that cut power run in the `switch` stage, which has a switch.
        [ -z "$named" ] && grep -q "power_cycle:" "$plan" && continue
        name=$(basename "$plan" .yaml)
        # A plan written for 4 KiB LBAs runs on NVPLANQ1, the others on NVPLANQ0.
        q=$Q0; grep -q "lba: 4096" "$plan" && q=$Q1
        check "plan $plan on QEMU" run_plan "$plan" "$q" "$name"
    done
    check "unplug under I/O: the function is released and nvplan ends" unplug "$Q1"
    ;;
bench)
    # 4 KiB random reads at queue depth 64 for 10 s: fio through the kernel's nvme driver,
    # then nvplan through VFIO, on the same controller.
    Q0=$(addr_of NVPLANQ0)
    blk=$(basename "$(ls -d /sys/bus/pci/devices/"$Q0"/nvme/nvme*/nvme*n1 | head -1)")
    dd if=/dev/zero of="/dev/$blk" bs=1M count=256 oflag=direct status=none
    for engine in io_uring libaio; do
        fio --name=randread --filename="/dev/$blk" --direct=1 --rw=randread --bs=4k --iodepth=64 \
            --size=256M --runtime=10 --time_based --ioengine=$engine --output-format=terse --terse-version=3 \
            | awk -F';' -v e=$engine '{printf "BENCH fio-%s iops=%d\n", e, $8}'
    done
    $NV bind "$Q0" >/dev/null
    $NV run benches/qemu/randread-4k-qd64.yaml --target "vfio:$Q0" --quiet --out "$OUT/bench" >/dev/null
    python3 -c "import json; print('BENCH nvplan-vfio iops=%d' % json.load(open('$OUT/bench/summary.json'))['phases'][-1]['workers'][0]['iops'])"
    ;;
python)
    # The Python front through VFIO on NVPLANQ0: every Buffer and queue lives in the one
    # address space all controllers opened from Python share, mapped into the function's
    # IOMMU container at its own IOVA.
    Q0=$(addr_of NVPLANQ0)
    [ -n "$Q0" ] || { echo "NVPLANQ0 not found"; exit 1; }
    $NV bind "$Q0" >/dev/null
    PY=$(cat "$OUT/python")
    export PATH=$(dirname "$PY"):$PATH PYTHONPATH=$OUT/../py PYTHONDONTWRITEBYTECODE=1 NVPLAN_PYNVME_DIR=$OUT/pynvme
    here=python/tests/pynvme
    check "PyNVMe 2.3.2's tests on NVPLANQ0" timeout 900 $here/run.sh --subset $here/qemu-subset.txt \
        --known $here/known-failures-qemu.txt --pciaddr "$Q0"
    # nvplan's own Python tests of the `nvme` front and of metamode (test_seed_ioworker.py
    # is minutes of timed ioworkers: too long for the harness), but those that need the
    # simulator's power switch.
    deselect=(
        # power_cycle: this stage declares no power switch (the switch stage cuts power)
        "not test_power_cycle_keeps_flushed_data"
        # msix_*: vfio-pci owns the MSI-X table; nvplan does not program it through VFIO
        "not test_qpair_msix_word_is_set_by_completions_held_while_masked"
        # ASPM L1 and a hot reset: QEMU's link lists L0s only, and its root ports under ACPI
        # hot-plug offer no bus reset (the pcie stage runs the same through a plan)
        "not test_pcie_d3hot_aspm_hot_reset_and_flr_read_back_through_configuration_space"
        # runs a plan on the embedded simulator, not on the device under test; inside the
        # emulated guest the simulator's 128 KiB writes take over slow_latency's 1 s (-8)
        "not test_run_plan_returns_the_summary"
    )
    k=
    for d in "${deselect[@]}"; do k="${k:+$k and }$d"; done
    check "nvplan's Python tests on NVPLANQ0" timeout 900 "$PY" -m pytest python/tests/test_nvme_front.py \
        python/tests/test_metamode_seed.py -p no:cacheprovider -q \
        --timeout 300 -rfE --pciaddr "$Q0" -k "$k"
    ;;
switch | pcie)
    # Power cycles through a real mechanism: nvplan's `command` switch runs power.sh, which
    # cuts the slot's power through the guest's PCIe hot-plug driver and has the host add
    # the controller again through QEMU's monitor.
    Q0=$(addr_of NVPLANQ0)
    [ -n "$Q0" ] || { echo "NVPLANQ0 not found"; exit 1; }
    stty -F /dev/ttyS1 raw -echo
    echo "hot-plug slots: $(for s in /sys/bus/pci/slots/*; do echo -n "$(basename "$s")=$(cat "$s/address") "; done)"
    $NV bind "$Q0" >/dev/null
    # Should the guest's kernel hang here (the harness gives up on a stage after 900 s),
    # its log, blocked tasks' stacks included, shows on the console first.
    (sleep 780; echo "== stage $stage still runs after 780 s; the kernel's log:"; dmesg | tail -300) &
    ps=$ROOT/tests/qemu/power.sh
    POWER="command:off=$ps off nvme0,on=$ps on nvme0,status=$ps status nvme0,timeout=60s,ready=60s"
    # Cycle times, from the power_cycle events' details.
    cycles() {
        python3 -c "import json,sys; s=json.load(open(sys.argv[1])); [print('POWER-CYCLE', sys.argv[2], p['label'], e['detail']) for p in s['phases'] for e in p['events'] if e['kind'] == 'power_cycle']" "$OUT/plans/$1/summary.json" "$1" 2>/dev/null
    }
    plans="plans/*.yaml plans/seed/*.yaml plans/metamode/*.yaml"
    [ -e "$OUT/plans-list" ] && plans=$(cat "$OUT/plans-list")
    # `pcie` boots the same machine for the PCIe events alone.
    [ "$stage" = pcie ] && plans=
    for plan in $plans; do
        grep -q "power_cycle:" "$plan" || continue
        name=$(basename "$plan" .yaml)
        check "plan $plan on QEMU, power cut by the slot's hot-plug driver" run_plan "$plan" "$Q0" "$name" --power "$POWER"
        cycles "$name"
    done
    # The driver's own power cycles (Controller::power_off / power_on) through the same
    # switch: what a clean cycle and a shutdown must keep.
    if [ "$stage" = switch ]; then
        bin=$(grep "/deps/power_reset-" "$OUT/../test-binaries" | head -1)
        check "a clean power cycle and a shutdown keep cached writes, power cut by the slot's hot-plug driver" \
            env NVPLAN_TEST_TARGET="vfio:$Q0" NVPLAN_TEST_POWER="$POWER" "$bin" --exact clean_power_cycle_and_shutdown_keep_cached_writes --test-threads=1
    fi
    # What the kernel said about the slot and the function, when something failed.
    [ $fails -gt 0 ] && dmesg | grep -iE "pciehp|vfio|iommu|nvme|01:00" | tail -80
    check "plans refuse a power cycle without a switch" bash -c "! $NV validate plans/power-cycle-dirty.yaml --target vfio:$Q0 2>&1 | tee /dev/stderr | grep -q ok"
    # PCIe resets, D-states and ASPM through VFIO, with what configuration space read back.
    check "PCIe resets and D3hot under verified I/O" run_plan tests/qemu/pcie-plan.yaml "$Q0" pcie
    python3 -c "import json; s=json.load(open('$OUT/plans/pcie/summary.json')); [print('PCIE-EVENT', e['outcome'], e['detail'], e.get('error') or '') for p in s['phases'] for e in p['events']]"
    ;;
power-write | power-check)
    # Power loss: the harness kills QEMU once the write stage prints NVPLAN-POWER-FLUSHED.
    Q0=$(addr_of NVPLANQ0)
    [ -n "$Q0" ] || { echo "NVPLANQ0 not found"; exit 1; }
    $NV bind "$Q0" >/dev/null
    bin=$(grep "/deps/flushed_data_survives_power_loss-" "$OUT/../test-binaries" | head -1)
    check "flushed data, $stage" env NVPLAN_TEST_TARGET="vfio:$Q0" NVPLAN_POWER_STAGE="${stage#power-}" "$bin" --nocapture --test-threads=1
    ;;
esac
echo "== $fails failure(s) in stage $stage"
exit $fails
