#!/usr/bin/env bash
# Drives QEMU's emulated NVMe controllers through nvplan's VFIO transport, inside a QEMU
# guest (software emulation with a virtual IOMMU; no KVM, no hardware needed).
#
#   tests/qemu/run.sh            build, boot, run everything below, exit non-zero on failure
#   tests/qemu/run.sh --shell    boot the guest to a shell (for debugging)
#   NVPLAN_QEMU_STAGES="main power switch bench python" tests/qemu/run.sh
#                                choose stages (default: main power pcie python); `bench`
#                                sets nvplan's 4 KiB random-read IOPS beside fio's on the
#                                same controller; `switch` is run by name (docs/power.md:
#                                QEMU 7.2 does not add a controller back reliably enough
#                                for every CI run)
#
# The guest has three controllers, each behind its own PCIe root port (own IOMMU group):
#   nvme0  serial NVPLANQ0: one 1 GiB namespace of 512 B LBAs (as the default simulator),
#          MDTS 8 (1 MiB transfers, as the SNIA plan asks)
#   nvme1  serial NVPLANQ1: two 256 MiB namespaces of 4 KiB LBAs, MDTS 2 (16 KiB transfers)
#   nvme2  serial NVPLANQ2: no MDTS, three namespaces as the tests' three-namespace
#          simulator: 16 MiB of 512 B LBAs, 32 MiB of 4 KiB, 8 MiB of 512 B
# All grant 64 I/O queue pairs, as the simulator does (QEMU 7.2 queues hold 2048 entries,
# the simulator's 1024).
# Stages (each one boot): `main` (devices and bind on the guest's sysfs, the driver test
# suite, the reference plans), then power loss: `power-write` writes and flushes, QEMU is
# killed while writes go on, and `power-check` boots on the same image files and reads
# back what was flushed. `switch`: power cycles through a real mechanism while verified
# writes run: the guest's PCIe hot-plug driver cuts the slot power of a controller (QEMU
# drops the device), and the host adds it again through QEMU's monitor (QMP), driven by
# nvplan's `command` switch (tests/qemu/power.sh in the guest, power-relay.py here); every
# plan with power_cycle events runs so, and PCIe resets, D3hot and ASPM run through VFIO.
# `python`: the Python front (this checkout's wheel, installed under
# target/qemu/py) through VFIO on NVPLANQ0: PyNVMe 2.3.2's own tests
# (python/tests/pynvme/qemu-subset.txt, checked against known-failures-qemu.txt) and
# nvplan's python/tests.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${NVPLAN_QEMU_WORK:-$ROOT/target/qemu}
OUT=$WORK/out
TIMEOUT=${NVPLAN_QEMU_TIMEOUT:-900}
mkdir -p "$WORK" "$OUT"

say() { printf 'qemu-harness: %s\n' "$*" >&2; }

# --- packages ----------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx mkswap || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        say "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
    else
        say "missing Debian packages: ${need[*]} (apt-get install ${need[*]})"
        exit 2
    fi
fi

# --- guest kernel ------------------------------------------------------------------------
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
KVER=${KPKG#linux-image-}
if [ -z "$KVER" ]; then say "cannot tell which guest kernel to use (apt-cache depends linux-image-amd64)"; exit 2; fi
KDIR=$WORK/kernel-$KVER
if [ ! -f "$KDIR/boot/vmlinuz-$KVER" ]; then
    say "fetching guest kernel $KPKG"
    (cd "$WORK" && apt-get download "$KPKG" >/dev/null 2>&1 && dpkg -x "$KPKG"_*.deb "$KDIR" && rm -f "$KPKG"_*.deb)
fi
MODS=$KDIR/lib/modules/$KVER/kernel

STAGES=${NVPLAN_QEMU_STAGES:-main power pcie python}
has_stage() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- binaries ----------------------------------------------------------------------------
cd "$ROOT"
say "building nvplan"
cargo build --release --quiet
if has_stage main || has_stage power || has_stage switch; then
    say "building the test binaries"
    cargo test --release --no-run --message-format=json 2>/dev/null \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' > "$WORK/test-binaries"
fi
if has_stage python; then
    # This checkout's Python package, as a wheel installed under $WORK/py (not into the
    # machine's site-packages, which may hold another checkout's): the guest puts it first
    # on PYTHONPATH. The guest runs the host's Python, named in $OUT/python.
    PY=$(python3 -c 'import sys; print(sys.executable)')
    pip_need=()
    # maturin as a module of that Python: pip may put its script where PATH does not look
    # (a pyenv version's bin behind its shims).
    "$PY" -c 'import maturin' 2>/dev/null || pip_need+=(maturin)
    "$PY" -c 'import pytest' 2>/dev/null || pip_need+=(pytest)
    "$PY" -c 'import pytest_timeout' 2>/dev/null || pip_need+=(pytest-timeout)
    if [ ${#pip_need[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            say "installing ${pip_need[*]} (pip)"
            "$PY" -m pip install --quiet --root-user-action=ignore "${pip_need[@]}"
        else
            say "missing Python packages: ${pip_need[*]} (pip install ${pip_need[*]})"
            exit 2
        fi
    fi
    say "building the Python package"
    rm -rf "$WORK/wheels" "$WORK/py"
    (cd python && "$PY" -m maturin build --release -o "$WORK/wheels" > "$WORK/wheel.log" 2>&1) || { cat "$WORK/wheel.log" >&2; exit 1; }
    "$PY" -m pip install --quiet --root-user-action=ignore --no-deps --no-compile --target "$WORK/py" "$WORK"/wheels/nvplan-*.whl
    printf '%s' "$PY" > "$OUT/python"
    # The guest has no network: PyNVMe's suite is fetched and unpacked here, into the
    # output directory (written by the guest: results, caches).
    NVPLAN_PYNVME_DIR=$OUT/pynvme python/tests/pynvme/run.sh --fetch-only
fi

# --- initramfs ---------------------------------------------------------------------------
INITRD=$WORK/initrd.gz
IR=$WORK/initramfs
rm -rf "$IR"; mkdir -p "$IR"/{bin,mods,proc,sys,dev,host,tmp}
cp /bin/busybox "$IR/bin/busybox"
n=0
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 drivers/vfio/vfio_virqfd \
         drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci \
         drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache \
         net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p \
         crypto/crct10dif_common lib/crc-t10dif lib/crc64 lib/crc64-rocksoft block/t10-pi \
         drivers/nvme/host/nvme-core drivers/nvme/host/nvme; do
    f=$(ls "$MODS/$m.ko"* 2>/dev/null | head -1)
    [ -n "$f" ] || { say "module $m missing from $KPKG"; exit 2; }
    n=$((n + 1))
    case $f in
        *.xz) xz -dc "$f" > "$IR/mods/$(printf %02d $n)-$(basename "$m").ko" ;;
        *) cp "$f" "$IR/mods/$(printf %02d $n)-$(basename "$m").ko" ;;
    esac
done
cat > "$IR/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod \$m 2>/dev/null || echo "insmod \$m failed"; done
stage=\$(sed -n 's/.*nvplan.stage=\([a-z-]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t 9p -o trans=virtio,version=9p2000.L,rw out /host$OUT
if [ "\$stage" = shell ]; then setsid cttyhack sh; poweroff -f; fi
chroot /host /bin/bash $ROOT/tests/qemu/guest.sh "\$stage" $ROOT $OUT
echo "NVPLAN-QEMU-DONE rc=\$?"
poweroff -f
INIT
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$INITRD")

# --- images ------------------------------------------------------------------------------
IMG=$WORK/img
mkdir -p "$IMG"
fresh_images() {
    rm -f "$IMG"/*.img
    truncate -s 1G "$IMG/q0n1.img"
    truncate -s 256M "$IMG/q1n1.img"
    truncate -s 256M "$IMG/q1n2.img"
    truncate -s 16M "$IMG/q2n1.img"
    truncate -s 32M "$IMG/q2n2.img"
    truncate -s 8M "$IMG/q2n3.img"
}

# The controllers of every stage but `switch`.
controllers=(
        -device pcie-root-port,id=rp0,chassis=1,slot=1
        -device pcie-root-port,id=rp1,chassis=2,slot=2
        -device pcie-root-port,id=rp2,chassis=3,slot=3
        -drive file="$IMG/q0n1.img",if=none,id=q0n1,format=raw,cache=writeback,discard=unmap
        -device nvme,id=nvme0,serial=NVPLANQ0,bus=rp0,max_ioqpairs=64,mdts=8
        -device nvme-ns,bus=nvme0,drive=q0n1,nsid=1,logical_block_size=512,physical_block_size=512,uuid=5eed0000-0000-4000-8000-000000000001,eui64=0x5eed000000000001
        -drive file="$IMG/q1n1.img",if=none,id=q1n1,format=raw,cache=writeback,discard=unmap
        -drive file="$IMG/q1n2.img",if=none,id=q1n2,format=raw,cache=writeback,discard=unmap
        -device nvme,id=nvme1,serial=NVPLANQ1,bus=rp1,max_ioqpairs=64,mdts=2
        -device nvme-ns,bus=nvme1,drive=q1n1,nsid=1,logical_block_size=4096,physical_block_size=4096,uuid=5eed0000-0000-4000-8000-000000000002,eui64=0x5eed000000000002
        -device nvme-ns,bus=nvme1,drive=q1n2,nsid=2,logical_block_size=4096,physical_block_size=4096,uuid=5eed0000-0000-4000-8000-000000000003,eui64=0x5eed000000000003
        -drive file="$IMG/q2n1.img",if=none,id=q2n1,format=raw,cache=writeback,discard=unmap
        -drive file="$IMG/q2n2.img",if=none,id=q2n2,format=raw,cache=writeback,discard=unmap
        -drive file="$IMG/q2n3.img",if=none,id=q2n3,format=raw,cache=writeback,discard=unmap
        -device nvme,id=nvme2,serial=NVPLANQ2,bus=rp2,max_ioqpairs=64,mdts=0
        -device nvme-ns,bus=nvme2,drive=q2n1,nsid=1,logical_block_size=512,physical_block_size=512,uuid=5eed0000-0000-4000-8000-000000000004,eui64=0x5eed000000000004
        -device nvme-ns,bus=nvme2,drive=q2n2,nsid=2,logical_block_size=4096,physical_block_size=4096,uuid=5eed0000-0000-4000-8000-000000000005,eui64=0x5eed000000000005
        -device nvme-ns,bus=nvme2,drive=q2n3,nsid=3,logical_block_size=512,physical_block_size=512,uuid=5eed0000-0000-4000-8000-000000000006,eui64=0x5eed000000000006)

# The `switch` stage: NVPLANQ0 (1 GiB of 512 B LBAs, MDTS 8) in a hot-plug slot the guest's
# native PCIe hot-plug driver runs (not ACPI's), with its namespace given to the controller
# itself: QEMU 7.2 cannot add an nvme-ns to a controller added later. QMP for the relay,
# and the relay's serial line as the guest's second serial port. The image is a block node
# (-blockdev), not a named drive, and shared (share-rw): each controller added gets a
# backend of its own on it, so one added again does not wait for QEMU to let go of the
# removed one's (QEMU 7.2 at times holds it long after the removal, docs/power.md).
power_dev='{"nvme0": {"driver": "nvme", "id": "nvme0", "serial": "NVPLANQ0", "bus": "rp0", "drive": "q0n1", "share-rw": true, "max_ioqpairs": 64, "mdts": 8, "logical_block_size": 512, "physical_block_size": 512}}'
switch_controllers=(
        -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
        -qmp unix:"$WORK/qmp.sock",server=on,wait=off
        -chardev socket,id=power,path="$WORK/power.sock",server=on,wait=off
        -serial mon:stdio -serial chardev:power
        -device pcie-root-port,id=rp0,chassis=1,slot=1
        -blockdev driver=file,node-name=q0n1f,filename="$IMG/q0n1.img",cache.direct=off,discard=unmap
        -blockdev driver=raw,node-name=q0n1,file=q0n1f,discard=unmap
        -device nvme,id=nvme0,serial=NVPLANQ0,bus=rp0,drive=q0n1,share-rw=on,max_ioqpairs=64,mdts=8,logical_block_size=512,physical_block_size=512)

# boot STAGE LOG: runs QEMU until the guest powers off; KILL_ON=<marker> kills it instead
# as soon as the marker shows on the console.
boot() {
    local stage=$1 log=$2 relay=
    local devices=("${controllers[@]}")
    case $stage in switch | pcie) devices=("${switch_controllers[@]}") ;; esac
    local args=(-accel tcg -cpu max -m 2048 -smp 2 -M q35,kernel-irqchip=split
        -device intel-iommu,intremap=on,caching-mode=on
        -nographic -no-reboot -kernel "$KDIR/boot/vmlinuz-$KVER" -initrd "$INITRD"
        -append "console=ttyS0 intel_iommu=on iommu=pt quiet panic=-1 nvplan.stage=$stage"
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
        -virtfs local,path="$OUT",mount_tag=out,security_model=none,multidevs=remap
        "${devices[@]}")
    if [ "$stage" = shell ]; then exec qemu-system-x86_64 "${args[@]}"; fi
    : > "$log"
    rm -f "$WORK/qmp.sock" "$WORK/power.sock"
    qemu-system-x86_64 "${args[@]}" > "$log" 2>&1 < /dev/null &
    local qpid=$! start=$SECONDS
    if [ "$stage" = switch ] || [ "$stage" = pcie ]; then
        python3 "$ROOT/tests/qemu/power-relay.py" "$WORK/qmp.sock" "$WORK/power.sock" "$power_dev" 2> "$WORK/relay.log" &
        relay=$!
    fi
    while kill -0 $qpid 2>/dev/null; do
        if [ -n "${KILL_ON:-}" ] && grep -q "$KILL_ON" "$log"; then
            kill -9 $qpid; wait $qpid 2>/dev/null || true
            say "killed QEMU (power loss) after '$KILL_ON'"
            return 0
        fi
        if [ $((SECONDS - start)) -gt "$TIMEOUT" ]; then
            kill -9 $qpid; say "stage $stage: no result after $TIMEOUT s"; tail -50 "$log" >&2
            if [ -n "$relay" ]; then kill "$relay" 2>/dev/null; fi
            return 1
        fi
        sleep 0.2
    done
    local qrc=0
    wait $qpid 2>/dev/null || qrc=$?
    if [ -n "$relay" ]; then kill "$relay" 2>/dev/null; wait "$relay" 2>/dev/null || true; fi
    local rc
    rc=$(sed -n 's/.*NVPLAN-QEMU-DONE rc=\([0-9]*\).*/\1/p' "$log" | tail -1)
    # QEMU 7.2 itself dies at times (SIGSEGV, SIGABRT) while the guest resets a controller under
    # I/O (docs/qemu.md). That says nothing of nvplan, so such a stage runs again, on fresh
    # images where it started on them, up to twice; a third crash fails it.
    local tries=${QEMU_TRIES:-1}
    if [ -z "$rc" ] && [ "$qrc" -ge 128 ] && [ -z "${KILL_ON:-}" ] && [ "$tries" -lt 3 ]; then
        say "stage $stage: QEMU itself died (exit status $qrc, signal $((qrc - 128))) in try $tries; the guest's last lines:"
        tail -15 "$log" >&2
        cp "$log" "$log.crashed-$tries"
        [ "$stage" = power-check ] || fresh_images
        QEMU_TRIES=$((tries + 1)) boot "$stage" "$log"
        return
    fi
    if [ "${rc:-x}" != 0 ]; then
        say "stage $stage failed (rc=${rc:-none}, QEMU exit status $qrc); guest output:"
        cat "$log" >&2
        return 1
    fi
    say "stage $stage passed in $((SECONDS - start)) s"
}

if [ "${1:-}" = --shell ]; then fresh_images; boot shell /dev/null; fi

# For quicker rounds: NVPLAN_QEMU_SUITES="admin metamode" and NVPLAN_QEMU_PLANS="plans/x.yaml"
# (empty: none) narrow the main stage.
printf '%s' "${NVPLAN_QEMU_SUITES:-}" > "$OUT/suites"
rm -f "$OUT/plans-list"
if [ -n "${NVPLAN_QEMU_PLANS+set}" ]; then printf '%s' "$NVPLAN_QEMU_PLANS" > "$OUT/plans-list"; fi
fresh_images
fail=0
case " $STAGES " in *" main "*) boot main "$WORK/main.log" || fail=1 ;; esac
case " $STAGES " in *" bench "*)
    boot bench "$WORK/bench.log" || fail=1
    grep -ao 'BENCH .*' "$WORK/bench.log" >&2 || true ;;
esac
for stage in switch pcie; do
    has_stage $stage || continue
    fresh_images
    boot $stage "$WORK/$stage.log" || fail=1
    grep -a 'POWER-CYCLE\|PCIE-EVENT' "$WORK/$stage.log" >&2 || true
done
if has_stage python; then
    fresh_images
    boot python "$WORK/python.log" || fail=1
    grep -a 'PyNVMe suite on nvplan\|NVPLAN-PYTEST' "$WORK/python.log" >&2 || true
fi
case " $STAGES " in *" power "*) ;; *) [ $fail = 0 ] && say "all stages passed"; exit $fail ;; esac
# Power loss: the images start fresh so the check reads only what this write stage left.
fresh_images
KILL_ON=NVPLAN-POWER-FLUSHED boot power-write "$WORK/power-write.log" || fail=1
grep -q NVPLAN-POWER-FLUSHED "$WORK/power-write.log" || { say "power-write never flushed"; cat "$WORK/power-write.log" >&2; fail=1; }
boot power-check "$WORK/power-check.log" || fail=1
if [ $fail = 0 ]; then say "all stages passed"; else say "FAILED"; fi
exit $fail
