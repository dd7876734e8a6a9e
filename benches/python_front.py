"""What the Python front costs: the same work started from Python and from Rust.

1. QD1 synchronous reads, ``nvme0n1.read(qpair, buf, lba, 8).waitdone()`` in a Python
   loop, next to the same loop through the Rust API (``cargo bench --bench qd1``, run from
   here so both are measured in the same run).
2. A 4 KiB random-read I/O worker started from Python with ``ioworker()``, next to the
   same worker run from a YAML plan (``benches/python/randread-4k.yaml``).

    python3 benches/python_front.py      (NVPLAN_BENCH_SECS sets each run, default 5 s)

Needs the package installed (``pip install ./python``) and cargo for the Rust side.
"""

import os
import re
import subprocess
import sys
import time

import nvplan

import nvme as d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECS = float(os.environ.get("NVPLAN_BENCH_SECS", "5"))


def python_qd1():
    pcie = d.Pcie("sim")
    nvme0 = d.Controller(pcie)
    ns = d.Namespace(nvme0)
    q = d.Qpair(nvme0, 1024)
    buf = d.Buffer(4096)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < SECS:
        for _ in range(1000):
            ns.read(q, buf, n % 1024 * 8, 8).waitdone()
            n += 1
    rate = n / (time.perf_counter() - start)
    q.delete()
    pcie.close()
    return rate


def rust_qd1():
    env = dict(os.environ, NVPLAN_BENCH_SECS=str(SECS))
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "qd1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Rust API: (\d+) commands/s", out).group(1))


def python_ioworker():
    pcie = d.Pcie("sim")
    nvme0 = d.Controller(pcie)
    ns = d.Namespace(nvme0)
    # cpu_id=0: a plan pins each worker (the first to CPU 0); the same here, so both sides
    # run the same worker.
    r = ns.ioworker(io_size=8, lba_align=8, read_percentage=100, qdepth=63, time=SECS,
                    cpu_id=0).start().close()
    pcie.close()
    return r.io_count_read * 1000 / r.mseconds


def plan_ioworker():
    s = nvplan.run_plan(os.path.join(ROOT, "benches", "python", "randread-4k.yaml"), time_scale=SECS / 5)
    return s["phases"][0]["workers"][0]["iops"]


def main():
    py1, rs1 = python_qd1(), rust_qd1()
    print(f"QD1 4 KiB read + waitdone, Python loop: {py1:10.0f} commands/s  {1e6 / py1:6.2f} us/command")
    print(f"QD1 4 KiB read, Rust API loop:          {rs1:10.0f} commands/s  {1e6 / rs1:6.2f} us/command")
    print(f"  Python front per synchronous command: {1e6 / py1 - 1e6 / rs1:+.2f} us ({py1 / rs1:.2f}x the Rust rate)")
    pyw, plw = python_ioworker(), plan_ioworker()
    print(f"4 KiB random read worker, from Python:  {pyw:10.0f} IOPS")
    print(f"4 KiB random read worker, from a plan:  {plw:10.0f} IOPS")
    print(f"  Python / plan: {pyw / plw:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
