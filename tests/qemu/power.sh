#!/bin/bash
# The QEMU harness's power switch for one NVMe controller, as nvplan's `command` switch
# runs it inside the guest:
#   power.sh off ID     the guest's PCIe hot-plug driver (pciehp) powers the controller's
#                       slot off (/sys/bus/pci/slots/N/power); QEMU drops a device whose
#                       slot loses power; the host's relay confirms it is gone
#   power.sh on ID      the host's relay adds the controller again through QEMU's monitor;
#                       the guest's hot-plug driver powers the slot and enumerates it
#   power.sh status ID  prints on or off
# The relay (tests/qemu/power-relay.py) listens on the guest's second serial port. The
# controller is the one at $NVPLAN_PCI_ADDRESS (nvplan sets it).
set -u
op=$1 id=$2
port=/dev/ttyS1

# Sends a request and prints the relay's answer to it (bounded: 30 s).
ask() {
    local reply deadline=$((SECONDS + 30))
    exec 3<>"$port"
    echo "NVPLAN-POWER $1 $id" >&3
    while [ $SECONDS -lt $deadline ]; do
        IFS= read -r -t 30 reply <&3 || break
        reply=${reply%$'\r'}
        case $reply in *" $1 $id") echo "${reply% "$1 $id"}"; return 0 ;; esac
    done
    echo "no answer from the host's power relay within 30 s" >&2
    return 1
}

case $op in
off)
    want=${NVPLAN_PCI_ADDRESS%.*} slot=
    for s in /sys/bus/pci/slots/*; do
        [ "$(cat "$s/address" 2>/dev/null)" = "$want" ] && slot=$s
    done
    [ -n "$slot" ] || { echo "no hot-plug slot holds ${NVPLAN_PCI_ADDRESS:-?}" >&2; exit 1; }
    echo 0 > "$slot/power" || { echo "writing 0 to $slot/power failed" >&2; exit 1; }
    r=$(ask off) || exit 1
    [ "$r" = OK ] || { echo "$r" >&2; exit 1; }
    ;;
on)
    r=$(ask on) || exit 1
    [ "$r" = OK ] || { echo "$r" >&2; exit 1; }
    ;;
status)
    r=$(ask status) || exit 1
    case $r in ON) echo on ;; OFF) echo off ;; *) echo "$r" >&2; exit 1 ;; esac
    ;;
*)
    echo "usage: power.sh off|on|status ID" >&2
    exit 2
    ;;
esac
