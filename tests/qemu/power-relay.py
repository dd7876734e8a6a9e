#!/usr/bin/env python3
"""The host's half of the QEMU harness's power switch (tests/qemu/power.sh is the guest's).

Reads requests from the guest on a serial line (a QEMU chardev socket) and answers them
through QEMU's monitor (QMP):

    NVPLAN-POWER off ID     -> OK off ID      once QEMU no longer has device ID (the guest
                                              cut its slot's power; QEMU drops a device
                                              whose slot is powered off), else device_del
    NVPLAN-POWER on ID      -> OK on ID       device_add of ID as it was at boot: the guest's
                                              hot-plug driver sees a card present, powers
                                              the slot and enumerates it
    NVPLAN-POWER status ID  -> ON status ID | OFF status ID
    anything that fails     -> FAIL <why> <op> ID

Usage: power-relay.py QMP_SOCKET SERIAL_SOCKET DEVICES_JSON  (DEVICES_JSON: {"ID": {device_add
arguments}}). Every wait is bounded; a line that is not a request is ignored (the guest may
print on the port).
"""
import json
import socket
import sys
import time

WAIT = 20.0


def connect(path):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"power-relay: cannot connect to {path}")
            time.sleep(0.05)


class Qmp:
    def __init__(self, path):
        self.f = connect(path).makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            m = json.loads(self.f.readline())
            if "event" not in m:
                return m

    def present(self, dev):
        return "error" not in self.cmd("qom-get", path="/machine/peripheral/" + dev, property="type")


def holders(q, node):
    """The devices whose backends hold block node `node`. A removed controller's backend
    goes when QEMU finalizes the device, which lags its removal (by many seconds after a
    controller reset under I/O); the node is shared (share-rw), so a controller added
    meanwhile gets a backend of its own on it."""
    blocks = q.cmd("query-block").get("return", [])
    return [b.get("qdev", "?") for b in blocks if (b.get("inserted") or {}).get("node-name") == node]


def gone(q, dev):
    deadline = time.monotonic() + WAIT
    while q.present(dev):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def handle(q, devs, op, dev):
    if dev not in devs:
        return f"FAIL no device {dev} is known to the relay"
    if op == "status":
        return "ON" if q.present(dev) else "OFF"
    if op == "off":
        if q.present(dev):
            # Not cut by the guest: ask for it (the guest's hot-plug driver powers the slot
            # off after its attention-button delay).
            q.cmd("device_del", id=dev)
        if not gone(q, dev):
            return f"FAIL {dev} still present {WAIT:.0f} s after off"
        held = holders(q, devs[dev].get("drive"))
        if held:
            print(f"power-relay: {dev} is gone; the removed controller still holds its block node ({len(held)} backend(s))", file=sys.stderr, flush=True)
        return "OK"
    if op == "on":
        if q.present(dev):
            return "OK"
        deadline = time.monotonic() + WAIT
        while True:
            r = q.cmd("device_add", **devs[dev])
            err = r.get("error", {}).get("desc", "")
            # The drive leaves the dropped device a moment after DEVICE_DELETED.
            if err and "in use" in err and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return f"FAIL {err}" if err else "OK"
    return f"FAIL unknown request {op}"


def main():
    qmp_path, serial_path, devs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    q = Qmp(qmp_path)
    port = connect(serial_path).makefile("rw", newline="\n")
    for line in port:
        words = line.split()
        if len(words) != 3 or words[0] != "NVPLAN-POWER":
            continue
        op, dev = words[1], words[2]
        t = time.monotonic()
        reply = handle(q, devs, op, dev)
        print(f"power-relay: {op} {dev}: {reply} ({(time.monotonic() - t) * 1000:.0f} ms)", file=sys.stderr, flush=True)
        port.write(f"{reply} {op} {dev}\n")
        port.flush()


if __name__ == "__main__":
    main()
