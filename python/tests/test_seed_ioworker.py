"""Every Python example of section 1 of PyNVMe3's "IO Models" (the ioworker), run as
written on nvplan's simulator.

Each test holds the example verbatim as an inner function of the same name, runs it,
and then asserts what it did as the controller saw it (SMART counters), or what it
logged. Examples that share a name in the document get a suffix on the outer test.
"""

import ast
import logging
import os
import time

import pytest
from conftest import delta, smart


def logged(caplog):
    """The value the example logged last (a list or dict printed by logging.info)."""
    return ast.literal_eval(caplog.records[-1].getMessage())


# 1.1 Parameters


def test_ioworker_io_size(nvme0, nvme0n1):
    def test_ioworker_io_size(nvme0n1):
        nvme0n1.ioworker(io_size=8,
                         time=5).start().close()
        nvme0n1.ioworker(io_size=[8, 16, 256],
                         time=5).start().close()
        nvme0n1.ioworker(io_size={8: 50, 16: 25, 256: 25},
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_io_size(nvme0n1)
    c = delta(before, smart(nvme0))
    assert c.reads > 0 and c.writes == 0
    # Mixed sizes move more data per command than 4 KiB alone.
    assert c.data_read * 1000 > c.reads * 8


def test_ioworker_lba_align(nvme0, nvme0n1):
    def test_ioworker_lba_align(nvme0n1):
        # Issue 4KiB random reads; each IO starts on a 4KiB boundary.
        nvme0n1.ioworker(io_size=8,  # 8 LBAs = 4KiB
                         lba_align=8,  # align starts to 4KiB boundaries
                         lba_random=True,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_lba_align(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_time(nvme0, nvme0n1):
    def test_ioworker_time(nvme0n1):
        nvme0n1.ioworker(io_size=8,
                         time=5).start().close()
    start = time.time()
    test_ioworker_time(nvme0n1)
    assert 5 <= time.time() - start < 8


def test_ioworker_io_count(nvme0, nvme0n1):
    def test_ioworker_io_count(nvme0n1):
        nvme0n1.ioworker(io_size=8,
                         io_count=10000).start().close()
    before = smart(nvme0)
    test_ioworker_io_count(nvme0n1)
    assert delta(before, smart(nvme0)).reads == 10000


def test_ioworker_lba_count_mixed(nvme0, nvme0n1):
    def test_ioworker_lba_count_mixed(nvme0n1):
        gib = 1024 * 1024 * 1024
        lbas_1gib = gib // nvme0n1.sector_size  # convert 1 GiB to LBAs
        nvme0n1.ioworker(
            io_size={8: 60, 128: 40},  # 4 KiB & 64 KiB mix (if 1 LBA = 512 B)
            lba_align=8,  # align to 4 KiB boundaries
            lba_random=True,
            read_percentage=70,  # 70% reads, 30% writes
            lba_count=lbas_1gib,  # stop after totaling 1 GiB of LBAs
            time=600  # safety timeout; first condition wins
        ).start().close()
    before = smart(nvme0)
    test_ioworker_lba_count_mixed(nvme0n1)
    c = delta(before, smart(nvme0))
    moved = (c.data_read + c.data_written) * 1000 * 512
    # Data units are rounded up per command batch: 1 GiB, within one unit per counter.
    assert 1024**3 - 2 * 512000 <= moved <= 1024**3 + 128 * 512 + 2 * 512000
    assert c.reads > c.writes > 0


def test_ioworker_lba_random(nvme0, nvme0n1):
    def test_ioworker_lba_random(nvme0n1):
        nvme0n1.ioworker(lba_random=False,
                         time=5).start().close()
        nvme0n1.ioworker(lba_random=50,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_lba_random(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_lba_step(nvme0, nvme0n1):
    def test_ioworker_lba_step(nvme0n1):
        nvme0n1.ioworker(io_size=8,
                         lba_random=False,
                         lba_step=16,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_lba_step(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_lba_step_down(nvme0, nvme0n1):
    def test_ioworker_lba_step(nvme0n1):
        nvme0n1.ioworker(lba_random=False,
                         io_size=1,
                         lba_start=10,
                         lba_step=-1,
                         io_count=10).start().close()
    before = smart(nvme0)
    test_ioworker_lba_step(nvme0n1)
    assert delta(before, smart(nvme0)).reads == 10


def test_ioworker_lba_step_zero(nvme0, nvme0n1):
    def test_ioworker_lba_step(nvme0n1):
        nvme0n1.ioworker(lba_random=False,
                         lba_start=100,
                         lba_step=0,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_lba_step(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_start_time(nvme0, nvme0n1, recwarn):
    def test_ioworker_start_time(nvme0n1):
        import time
        target = time.time() + 10
        start_time = time.time()
        wlist = []
        for i in range(5):
            w = nvme0n1.ioworker(io_size=8,
                                 read_percentage=100,
                                 time=10,
                                 cpu_id=i,
                                 start_time=target).start()
            wlist.append(w)
        time.sleep(1)
        for w in wlist:
            r = w.close()
    before = smart(nvme0)
    start = time.time()
    test_ioworker_start_time(nvme0n1)
    # Nothing before the start time, then 10 s of I/O.
    assert 19 <= time.time() - start < 25
    assert delta(before, smart(nvme0)).reads > 0
    # A worker asked for a CPU this machine lacks reports that it could not start.
    missing = max(0, 5 - os.cpu_count())
    assert sum("ioworker host ERROR -1" in str(w.message) for w in recwarn) == missing


def test_ioworker_read_percentage(nvme0, nvme0n1):
    def test_ioworker_read_percentage(nvme0n1):
        nvme0n1.ioworker(read_percentage=50,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_read_percentage(nvme0n1)
    c = delta(before, smart(nvme0))
    assert 0.4 < c.reads / (c.reads + c.writes) < 0.6


def test_ioworker_op_percentage_int(nvme0, nvme0n1):
    def test_ioworker_op_percentage_int(nvme0n1):
        nvme0n1.ioworker(
            op_percentage={2: 40, 1: 30, 9: 30},  # Read/Write/Deallocate
            time=5
        ).start().close()
    before = smart(nvme0)
    test_ioworker_op_percentage_int(nvme0n1)
    c = delta(before, smart(nvme0))
    # Deallocations are neither reads nor writes: 40 % and 30 % of all commands.
    assert 1.1 < c.reads / c.writes < 1.6


def test_ioworker_op_percentage_decimal(nvme0, nvme0n1):
    def test_ioworker_op_percentage_decimal(nvme0n1):
        nvme0n1.ioworker(
            op_percentage={2: 33.34, 1: 33.33, 9: 33.33},  # must sum to 100.00
            lba_random=True,
            io_size=8,
            time=10
        ).start().close()
    before = smart(nvme0)
    test_ioworker_op_percentage_decimal(nvme0n1)
    c = delta(before, smart(nvme0))
    assert 0.8 < c.reads / c.writes < 1.25


def test_ioworker_sgl_percentage(nvme0, nvme0n1):
    def test_ioworker_sgl_percentage(nvme0n1):
        nvme0n1.ioworker(sgl_percentage=50,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_sgl_percentage(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_qdepth(nvme0, nvme0n1):
    def test_ioworker_qdepth(nvme0n1):
        nvme0n1.ioworker(qdepth=127,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_qdepth(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_qprio(nvme0, nvme0n1):
    def test_ioworker_qprio(nvme0n1):
        nvme0n1.ioworker(qprio=0,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_qprio(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_region_start(nvme0, nvme0n1):
    def test_ioworker_region_start(nvme0n1):
        nvme0n1.ioworker(region_start=0x10,
                         lba_random=True,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_region_start(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_region_end(nvme0, nvme0n1):
    def test_ioworker_region_end(nvme0n1):
        nvme0n1.ioworker(region_start=0x10,
                         region_end=0x100,
                         time=5).start().close()
        nvme0n1.ioworker(region_start=[0x10, 0x1010],
                         region_end=[0x100, 0x1100],  # two regions: 0x10-0x100, 0x1010-0x1100
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_region_end(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_iops(nvme0, nvme0n1):
    def test_ioworker_iops(nvme0n1):
        nvme0n1.ioworker(iops=12345,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_iops(nvme0n1)
    assert 12345 * 5 * 0.95 <= delta(before, smart(nvme0)).reads <= 12345 * 5 + 64


def test_ioworker_io_flags(nvme0, nvme0n1):
    def test_ioworker_io_flags(nvme0n1):
        nvme0n1.ioworker(io_flags=0x4000,
                         read_percentage=0,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_io_flags(nvme0n1)
    c = delta(before, smart(nvme0))
    assert c.writes > 0 and c.reads == 0


def test_ioworker_jedec_workload(nvme0, nvme0n1):
    def test_ioworker_jedec_workload(nvme0n1):
        distribution = [1000]*5 + [200]*15 + [25]*80
        iosz_distribution = {1: 4,
                             2: 1,
                             3: 1,
                             4: 1,
                             5: 1,
                             6: 1,
                             7: 1,
                             8: 67,
                             16: 10,
                             32: 7,
                             64: 3,
                             128: 3}
        nvme0n1.ioworker(io_size=iosz_distribution,
                         lba_random=True,
                         qdepth=128,
                         distribution=distribution,
                         read_percentage=0,
                         ptype=0xbeef, pvalue=100,
                         time=1).start().close()
    before = smart(nvme0)
    test_ioworker_jedec_workload(nvme0n1)
    c = delta(before, smart(nvme0))
    assert c.writes > 0 and c.reads == 0


def test_ioworker_pvalue(nvme0, nvme0n1):
    def test_ioworker_pvalue(nvme0n1):
        nvme0n1.ioworker(ptype=32,
                         pvalue=0x5a5a5a5a,
                         read_percentage=0,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_pvalue(nvme0n1)
    assert delta(before, smart(nvme0)).writes > 0


def test_ioworker_pvalue_io_sequence(nvme0, nvme0n1):
    def test_ioworker_pvalue(nvme0n1):
        nvme0n1.ioworker(io_sequence=[(0, 1, 2, 0),
                                      (0, 1, 1, 1000000)],
                         ptype=0, pvalue=0).start().close()
    before = smart(nvme0)
    start = time.time()
    test_ioworker_pvalue(nvme0n1)
    assert time.time() - start >= 1
    c = delta(before, smart(nvme0))
    assert (c.reads, c.writes) == (1, 1)


def test_ioworker_slow_latency(nvme0, nvme0n1):
    def test_ioworker_slow_latency(nvme0n1):
        nvme0n1.ioworker(io_size=128,
                         slow_latency=2000_000,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_slow_latency(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_ioworker_exit_on_error(nvme0, nvme0n1):
    def test_ioworker_exit_on_error(nvme0n1):
        nvme0n1.ioworker(exit_on_error=True,
                         time=5).start().close()
    before = smart(nvme0)
    test_ioworker_exit_on_error(nvme0n1)
    assert delta(before, smart(nvme0)).reads > 0


def test_perf_unverified_ioworker(nvme0n1, caplog):
    def test_perf_unverified_ioworker(nvme0n1):
        a = nvme0n1.ioworker(
            io_size=8,  # 4 KiB if 1 LBA = 512 B
            lba_align=8,
            lba_random=True,
            qdepth=127,
            verify_disable=True,  # <-- disable verify for this worker
            time=10
        ).start()
        r = a.close()
        logging.info(r)
    caplog.set_level(logging.INFO)
    test_perf_unverified_ioworker(nvme0n1)
    r = logged(caplog)
    assert r["io_count_read"] > 0 and r["error"] == 0 and 9900 <= r["mseconds"] <= 10500


def test_performance(nvme0, nvme0n1, caplog):
    def test_performance(nvme0, nvme0n1):
        qcount = 1
        iok = 4
        qdepth = 128
        random = True
        readp = 100
        iosize = iok*1024//nvme0n1.sector_size
        l = []
        for i in range(qcount):
            a = nvme0n1.ioworker(io_size=iosize,
                                 lba_align=iosize,
                                 lba_random=random,
                                 cpu_id=i+1,
                                 qdepth=qdepth-1,
                                 read_percentage=readp,
                                 time=10).start()
            l.append(a)
        io_total = 0
        for a in l:
            r = a.close()
            logging.debug(r)
            io_total += (r.io_count_read+r.io_count_nonread)
        logging.info("Q %d IOPS: %.3fK, %dMB/s" % (qcount, io_total/10000, io_total/10000*iok))
    caplog.set_level(logging.INFO)
    before = smart(nvme0)
    test_performance(nvme0, nvme0n1)
    reads = delta(before, smart(nvme0)).reads
    assert reads > 0
    assert caplog.records[-1].getMessage() == "Q 1 IOPS: %.3fK, %dMB/s" % (reads / 10000, reads / 10000 * 4)


# 1.2 Output parameters


def test_ioworker_output_io_per_second(nvme0n1, caplog):
    def test_ioworker_output_io_per_second(nvme0n1):
        io_per_second = []
        nvme0n1.ioworker(output_io_per_second=io_per_second,
                         time=5).start().close()
        logging.info(io_per_second)
    caplog.set_level(logging.INFO)
    test_ioworker_output_io_per_second(nvme0n1)
    per_second = logged(caplog)
    assert len(per_second) == 5 and all(n > 0 for n in per_second)


def test_ioworker_output_percentile_latency(nvme0n1, caplog):
    def test_ioworker_output_percentile_latency(nvme0n1):
        percentile_latency = dict.fromkeys([99, 99.9, 99.999])
        nvme0n1.ioworker(output_percentile_latency=percentile_latency,
                         time=5).start().close()
        logging.info(percentile_latency)
    caplog.set_level(logging.INFO)
    test_ioworker_output_percentile_latency(nvme0n1)
    p = logged(caplog)
    assert 0 < p[99] <= p[99.9] <= p[99.999]


def test_ioworker_output_percentile_latency_opcode(nvme0n1, caplog):
    def test_ioworker_output_percentile_latency_opcode(nvme0n1):
        percentile_latency = dict.fromkeys([99, 99.9, 99.999])
        nvme0n1.ioworker(op_percentage={2: 40, 9: 30, 1: 30},
                         output_percentile_latency=percentile_latency,
                         output_percentile_latency_opcode=9,
                         time=5).start().close()
        logging.info(percentile_latency)
    caplog.set_level(logging.INFO)
    test_ioworker_output_percentile_latency_opcode(nvme0n1)
    p = logged(caplog)
    assert 0 < p[99] <= p[99.9] <= p[99.999]


def test_power_cycle_dirty(nvme0, nvme0n1, subsystem, caplog):
    def test_power_cycle_dirty(nvme0, nvme0n1, subsystem):
        cmdlog_list = [None]*1000
        # 128K random write
        with nvme0n1.ioworker(io_size=256,
                              lba_align=256,
                              lba_random=True,
                              read_percentage=30,
                              slow_latency=2_000_000,
                              time=15,
                              qdepth=63,
                              output_cmdlog_list=cmdlog_list):
            # sudden power loss before the ioworker end
            time.sleep(5)
            subsystem.poweroff()
        # power on and reset controller
        time.sleep(5)
        start = time.time()
        subsystem.poweron()
        nvme0.reset()
        logging.info(cmdlog_list)
    caplog.set_level(logging.INFO)
    before = smart(nvme0)
    test_power_cycle_dirty(nvme0, nvme0n1, subsystem)
    assert delta(before, smart(nvme0)).unsafe_shutdowns == 1
    cmdlog = logged(caplog)
    # The last 1000 commands sent; those the power loss caught (63 at most) never
    # completed and are left out, their slots zero at the front.
    used = [c for c in cmdlog if c[1] != 0]
    assert len(cmdlog) == 1000 and len(used) >= 1000 - 63
    assert cmdlog[:1000 - len(used)] == [(0, 0, 0, 0, 0, 0)] * (1000 - len(used))
    assert all(c[1] == 256 and c[0] % 256 == 0 and c[2] in (1, 2) and c[5] == 0 for c in used)


# 1.4 Examples


def test_ioworker_full_disk(nvme0, nvme0n1):
    def test_ioworker_full_disk(nvme0n1):
        ns_size = nvme0n1.id_data(7, 0)
        nvme0n1.ioworker(lba_random=False, io_size=8, read_percentage=100, region_end=ns_size).start().close()
    before = smart(nvme0)
    test_ioworker_full_disk(nvme0n1)
    assert delta(before, smart(nvme0)).reads == nvme0n1.id_data(7, 0) // 8


@pytest.mark.hours
def test_ioworker_qpair(nvme0, nvme0n1):
    def test_ioworker_qpair(nvme0n1):
        nvme0n1.ioworker(lba_random=True, io_size=8, read_percentage=0, time=3600).start().close()
    before = smart(nvme0)
    test_ioworker_qpair(nvme0n1)
    assert delta(before, smart(nvme0)).writes > 0


def test_reset_controller_reset_ioworker(nvme0, nvme0n1):
    def test_reset_controller_reset_ioworker(nvme0, nvme0n1):
        # issue controller reset while ioworker is running
        with nvme0n1.ioworker(io_size=8, time=10):
            time.sleep(5)
            nvme0.reset()
    before = smart(nvme0)
    start = time.time()
    test_reset_controller_reset_ioworker(nvme0, nvme0n1)
    # The reset ends the worker.
    assert time.time() - start < 8
    assert delta(before, smart(nvme0)).reads > 0
