"""The nvme module's behaviour on nvplan's simulator, through the plugin's fixtures."""

import os
import time

import nvme as d
import nvplan
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_write_then_read_returns_the_written_bytes(nvme0, nvme0n1, qpair):
    w = d.Buffer(512)
    w[10:21] = b"hello world"
    nvme0n1.write(qpair, w, 0, 1).waitdone()
    r = d.Buffer(512)
    nvme0n1.read(qpair, r, 0, 1).waitdone()
    assert r[10:21] == b"hello world"


def test_callback_submits_and_waitdone_reaps_both(nvme0, nvme0n1):
    q = d.Qpair(nvme0, 10)
    w, r = d.Buffer(512), d.Buffer(512)
    w[100] = 0x5A

    def write_cb(cdw0, status1):
        nvme0n1.read(q, r, 7, 1)

    nvme0n1.write(q, w, 7, 1, cb=write_cb)
    assert r[100] == 0
    q.waitdone(2)
    assert r[100] == 0x5A
    q.delete()


def test_one_argument_callback_gets_the_four_dwords(nvme0):
    got = []
    nvme0.getfeatures(7, cb=lambda cpl: got.append(cpl)).waitdone()
    assert type(got[0]) is tuple and len(got[0]) == 4
    assert got[0][3] >> 17 == 0


def test_waitdone_returns_dword0_of_the_last_completion(nvme0):
    nvme0.setfeatures(7, cdw11=0x00030003).waitdone()
    assert nvme0.getfeatures(7).waitdone() == nvme0.getfeatures(7).waitdone()


def test_failed_command_warns_its_status(nvme0):
    buf = d.Buffer(4096)
    with pytest.warns(UserWarning, match="ERROR status: 00/0b"):
        nvme0.identify(buf, 0xFFFFFF, 0).waitdone()


def test_admin_commands_sent_together_complete_in_one_waitdone(nvme0):
    for _ in range(20):
        nvme0.setfeatures(7, cdw11=0x00030003)
    nvme0.waitdone(20)


def test_qpair_takes_depth_minus_one_commands(nvme0, nvme0n1, buf):
    q = d.Qpair(nvme0, 4)
    for i in range(3):
        nvme0n1.read(q, buf, i * 8, 8)
    with pytest.raises(AssertionError):
        nvme0n1.read(q, buf, 24, 8)
    q.waitdone(3)
    q.delete()


def test_buffer_pattern_and_bounds():
    b = d.Buffer(512, "pattern", 0x12345678, 32)
    assert b[0] == 0x78 and b[3] == 0x12
    with pytest.raises(IndexError):
        b[512]
    with pytest.raises(AssertionError):
        d.Buffer(0)


def test_buffer_subclass_keeps_attributes():
    class Prp(d.Buffer):
        def __init__(self):
            self.entries = []

    p = Prp()
    p.entries.append(1)
    assert len(p) == 4096 and p.phys_addr % 4096 == 0


def test_ioworker_fills_output_arguments(nvme0n1):
    per_second = []
    percentile = {99.0: 0, 99.9: 0}
    cmdlog = [None] * 8
    r = nvme0n1.ioworker(io_size=8, read_percentage=50, time=2, output_io_per_second=per_second,
                         output_percentile_latency=percentile,
                         output_cmdlog_list=cmdlog).start().close()
    assert len(per_second) == 2 and all(n > 0 for n in per_second)
    assert 0 < percentile[99.0] <= percentile[99.9]
    assert all(c[1] == 8 for c in cmdlog)
    assert r.io_count_read > 0 and r["io_count_nonread"] > 0 and r.error == 0


def test_ioworker_rejects_what_pynvme_rejects(nvme0n1):
    with pytest.raises(AssertionError):
        nvme0n1.ioworker(qdepth=1, time=1)
    with pytest.raises(AssertionError):
        nvme0n1.ioworker(io_size=[8, 64, 128], region_end=100, time=1)
    with pytest.raises(AssertionError):
        nvme0n1.ioworker(io_size=8, lba_random=False)


def test_ioworker_context_manager_runs_beside_admin_commands(nvme0, nvme0n1):
    with nvme0n1.ioworker(io_size=8, time=1) as w:
        for _ in range(10):
            nvme0.getfeatures(7).waitdone()
        assert w.running
    assert not w.running


def test_power_cycle_keeps_flushed_data(nvme0, nvme0n1, subsystem):
    q = d.Qpair(nvme0, 8)
    w = d.Buffer(512)
    w[100:104] = b"keep"
    nvme0n1.write(q, w, 3, 1).waitdone()
    nvme0n1.flush(q).waitdone()
    q.delete()
    subsystem.power_cycle()
    nvme0.reset()
    q = d.Qpair(nvme0, 8)
    r = d.Buffer(512)
    nvme0n1.read(q, r, 3, 1).waitdone()
    assert r[100:104] == b"keep"
    q.delete()


def test_subsystem_power_goes_through_the_switch_given_to_it(nvme0, tmp_path):
    log = tmp_path / "log"
    s = d.Subsystem(nvme0, power=f"command:off=echo $NVPLAN_POWER_ACTION >> {log},on=echo on >> {log}")
    s.poweroff()
    s.poweron()
    nvme0.reset()
    assert log.read_text() == "off\non\n"
    nvme0.getfeatures(7).waitdone()
    with pytest.raises(Exception, match="unknown power switch"):
        d.Subsystem(nvme0, power="relay:3")


def test_subsystem_callbacks_switch_power_in_order(nvme0):
    calls = []
    s = d.Subsystem(nvme0, lambda: calls.append("on"), lambda: calls.append("off"))
    s.power_cycle(0)
    assert calls == ["off", "on"]
    nvme0.reset()
    nvme0.getfeatures(7).waitdone()


def test_pcie_d3hot_aspm_hot_reset_and_flr_read_back_through_configuration_space(pcie, nvme0):
    pcie.aspm = 2
    assert pcie.aspm == 2
    pcie.aspm = 0
    assert pcie.aspm == 0
    pcie.power_state = 3
    assert pcie.power_state == 3
    pcie.power_state = 0
    assert pcie.power_state == 0
    nvme0.reset()
    assert pcie.reset()
    nvme0.reset()
    assert pcie.flr()
    nvme0.reset()
    nvme0.getfeatures(7).waitdone()


def test_pcie_config_space_has_nvme_class_and_pm_capability(pcie):
    assert pcie[9:12] == [2, 8, 1]
    assert pcie.cap_offset(1) is not None
    assert pcie.cap_offset(2) is None


def test_run_plan_returns_the_summary():
    s = nvplan.run_plan(os.path.join(ROOT, "plans", "quickstart.yaml"), time_scale=0.1)
    failed = [
        (p["name"], p["outcome"], p["checks"], [(w["name"], w["outcome"], w["error"], w["error_message"], w["checks"])
                                                for w in p["workers"] if w["outcome"] != "pass"])
        for p in s["phases"] if p["outcome"] != "pass"
    ]
    assert s["outcome"] == "pass", failed
    assert s["phases"]


def test_qpair_msix_word_is_set_by_completions_held_while_masked(nvme0, nvme0n1, buf):
    q = d.Qpair(nvme0, 8)
    q.msix_clear()
    assert not q.msix_isset()
    nvme0n1.read(q, buf, 0, 1).waitdone()
    deadline = time.time() + 2
    while not q.msix_isset() and time.time() < deadline:
        pass
    assert q.msix_isset()
    q.msix_clear()
    q.msix_mask()
    nvme0n1.read(q, buf, 0, 1).waitdone()
    time.sleep(0.05)
    assert not q.msix_isset()
    q.msix_unmask()
    assert q.msix_isset()
    q.delete()
    off = d.Qpair(nvme0, 8, ien=False)
    with pytest.raises(AssertionError):
        off.msix_isset()
    off.delete()
