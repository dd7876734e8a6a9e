"""PyNVMe3's metamode examples (seed ``pynvme3-io-models.txt`` section 2), each body as
the seed gives it (indentation restored), followed by asserts of what it did. The seed's
own style (root logger, several statements in ``pytest.warns``) stays as it is."""
# ruff: noqa: I001, LOG015, PT031

import time, logging, pytest

from nvme import *


def test_metamode_read_command(nvme0):
    # Create an IOCQ and IOSQ
    cq = IOCQ(nvme0, 1, 10, PRP(10*16))
    sq = IOSQ(nvme0, 1, 10, PRP(10*64), cq=cq)
    # Step1: Host writes command to SQ Entry
    cmd_read = SQE(2, 1)
    cmd_read.cid = 0
    buf = PRP(4096)
    cmd_read.prp1 = buf
    sq[0] = cmd_read
    # Step2: The host updates the SQ tail doorbell register. Notify SSD that a new command is pending.
    sq.tail = 1
    # Step7: Host processes Completion entry
    cq.wait_pbit(cq.head, 1)
    # Step8: The host writes the CQ head doorbell to release the completion entry
    cq.head = 1
    # print first CQE's status field
    logging.info(cq[0].status)

    e = cq[0]
    assert (e.status, e.sc, e.sct, e.dnr, e.m, e.crd) == (0, 0, 0, 0, 0, 0)
    assert (e.p, e.cid, e.sqid, e.sqhd) == (1, 0, 1, 1)
    assert (sq.tail, cq.head, cq.id, sq.id, sq.cqid) == (1, 1, 1, 1, 1)
    assert (cmd_read.opc, cmd_read.nsid, cmd_read.prp1) == (2, 1, buf.phys_addr)
    # Write a pattern to LBA 0 through the same queues, read it back into buf.
    data = PRP(4096, ptype=32, pvalue=0x5a5a1234)
    sq.write(cid=1, nsid=1, lba=0, lba_count=1, prp1=data)
    sq.tail = 2
    cq.waitdone(1)
    cq.head = 2
    assert (cq[1].status, cq[1].cid, cq[1].p) == (0, 1, 1)
    sq.read(cid=2, nsid=1, lba=0, lba_count=1, prp1=buf)
    sq.tail = 3
    cq.waitdone(1)
    cq.head = 3
    assert (cq[2].status, cq[2].cid) == (0, 2)
    assert buf[0:512] == data[0:512]
    assert buf.data(3, 0) == 0x5a5a1234
    sq.delete()
    cq.delete()


def test_metamode_example(nvme0):
    # Create an IOCQ and IOSQ
    cq = IOCQ(nvme0, 1, 10, PRP(10*16))
    sq = IOSQ(nvme0, 1, 10, PRP(10*64), cq=cq)
    # Step1: Host writes command to SQ Entry
    sq.read(cid=0, nsid=1, lba=0, lba_count=1, prp1=PRP(4096))
    # Step2: The host updates the SQ tail doorbell register. Notify SSD that a new command is pending.
    sq.tail = 1
    # Step7: Host processes Completion entry
    cq.waitdone(1)
    # Step8: The host writes the CQ head doorbell to release the completion entry
    cq.head = 1
    # print first CQE's status field
    logging.info(cq[0].status)

    assert (cq[0].status, cq[0].cid, cq[0].p, cq[0].sqid) == (0, 0, 1, 1)
    # Nothing else completed: slot 1 still holds phase 0.
    assert cq[1].p == 0
    with pytest.raises(TimeoutError):
        cq.waitdone(1, timeout=0.05)


def test_prp_valid_offset_in_prplist(nvme0):
    # Create an IOCQ and IOSQ
    cq = IOCQ(nvme0, 1, 10, PRP(10*16))
    sq = IOSQ(nvme0, 1, 10, PRP(10*64), cq=cq)
    # Construct PRP1, set offset to 0x10
    buf = PRP(ptype=32, pvalue=0xffffffff)
    buf.offset = 0x10
    buf.size -= 0x10
    # Construct PRP list, and set offset to 0x20
    prp_list = PRPList()
    prp_list.offset = 0x20
    prp_list.size -= 0x20
    # Fill 8 PRP entries into the PRP list
    for i in range(8):
        prp_list[i] = PRP(ptype=32, pvalue=0xffffffff)
    # Construct a read command with the above PRP and PRP list
    cmd = SQE(2, 1)
    cmd.prp1 = buf
    cmd.prp2 = prp_list
    # Set the cdw12 of the command to 1
    cmd[12] = 1
    # Write command to SQ Entry, update SQ tail doorbell
    sq[0] = cmd
    sq.tail = 1
    # Wait for the CQ pbit to flip
    cq.wait_pbit(0, 1)
    # Updated CQ head doorbell
    cq.head = 1

    assert cq[0].status == 0
    assert (cmd.nlb, cmd[12]) == (2, 1)
    assert cmd.prp1 == buf.phys_addr and buf.phys_addr % 4096 == 0x10
    assert cmd.prp2 == prp_list.phys_addr and prp_list.phys_addr % 4096 == 0x20
    assert (buf.size, prp_list.size) == (4096 - 0x10, 4096 - 0x20)
    # The entries are at the list's offset: 8 page-aligned addresses, then nothing.
    entries = [prp_list.data(0x20 + i * 8 + 7, 0x20 + i * 8) for i in range(9)]
    assert all(a != 0 and a % 4096 == 0 for a in entries[:8]) and entries[8] == 0
    assert prp_list.data(0x1F, 0) == 0
    # LBAs 0 and 1 landed at PRP1's offset (as a plain read returns them: zeroes on a fresh
    # simulator, what earlier tests wrote on a drive); the bytes before it kept the 0xff
    # pattern.
    lba = nvme0n1_lba_size(nvme0)
    assert buf[0:0x10] == b"\xff" * 0x10
    assert buf[0x10:0x10 + 2 * lba] == read_lbas(nvme0, 0, 2, lba)
    with pytest.raises(AssertionError):
        prp_list[512] = PRP()


def read_lbas(nvme0, start, n, lba):
    ns, q = Namespace(nvme0), Qpair(nvme0, 8)
    try:
        b = Buffer(n * lba)
        ns.read(q, b, start, n).waitdone()
        return b[0:n * lba]
    finally:
        q.delete()
        ns.close()


def nvme0n1_lba_size(nvme0):
    ns = Namespace(nvme0)
    try:
        return ns.sector_size
    finally:
        ns.close()


def test_multi_sq_and_single_cq(nvme0):
    # Create 3 IOSQ, and mapping to a single IOCQ
    cq = IOCQ(nvme0, 1, 10, PRP(10*16))
    sq1 = IOSQ(nvme0, 1, 10, PRP(10*64), cq=cq)
    sq2 = IOSQ(nvme0, 2, 10, PRP(10*64), cq=cq)
    sq3 = IOSQ(nvme0, 3, 10, PRP(10*64), cq=cq)
    # Construct a write command
    cmd_write = SQE(1, 1)
    cmd_write.cid = 1
    cmd_write[12] = 1<<30
    # Set buffer of the write command
    buf2 = PRP(4096)
    buf2[10:21] = b'hello world'
    cmd_write.prp1 = buf2
    # Construct a read command
    cmd_read1 = SQE(2, 1)
    buf1 = PRP(4096)
    cmd_read1.prp1 = buf1
    cmd_read1.cid = 2
    # Construct another read command
    cmd_read2 = SQE(2, 1)
    buf3 = PRP(4096)
    cmd_read2.prp1 = buf3
    cmd_read2.cid = 3
    # place the commands into the SQs
    sq1[0] = cmd_write
    sq2[0] = cmd_read1
    sq3[0] = cmd_read2
    # Update SQ1 Tail doorbell to 1
    sq1.tail = 1
    # Wait for the Phase Tag of the head of CQE to be 1
    cq.wait_pbit(cq.head, 1)
    # Update CQ Head doorbell to 1
    cq.head = 1
    # Update SQ2 Tail doorbell to 1, and wait for the command completion
    sq2.tail = 1
    cq.wait_pbit(cq.head, 1)
    # Update CQ Head doorbell to 2
    cq.head = 2
    # Update SQ3 Tail doorbell to 1
    sq3.tail = 1
    cq.wait_pbit(cq.head, 1)
    # update CQ Head doorbell to 3
    cq.head = 3
    # Get the command represented by the first entry in CQ to complete the whole and command id
    logging.info(cq[0].status)
    logging.info(cq[0].cid)

    assert [(cq[i].status, cq[i].cid, cq[i].sqid, cq[i].sqhd) for i in range(3)] == [(0, 1, 1, 1), (0, 2, 2, 1), (0, 3, 3, 1)]
    assert cq[3].p == 0
    assert buf1[10:21] == b'hello world' and buf3[10:21] == b'hello world'
    assert buf1[0:4096] == buf2[0:512] + buf1[512:4096]


def test_same_cid(nvme0):
    # Create IOCQ/IOSQ with the depth of 10
    cq = IOCQ(nvme0, 1, 10, PRP(10*16))
    sq = IOSQ(nvme0, 1, 10, PRP(10*64), cq=cq)
    # Write two commands, and both cid are 1
    cmd_read1 = SQE(2, 1)
    buf1 = PRP(4096)
    cmd_read1.prp1 = buf1
    cmd_read1.cid = 1
    cmd_read2 = SQE(2, 1)
    buf2 = PRP(4096)
    cmd_read2.prp1 = buf2
    cmd_read2.cid = 1
    # fill two SQE to SQ
    sq[0] = cmd_read1
    sq[1] = cmd_read2
    # Updated SQ tail doorbell
    sq.tail = 2
    # Wait for the Phase Tag in entry 1 in CQ to be 1
    cq.wait_pbit(1, 1)
    # Update CQ Head doorbell to 1
    cq.head = 2
    # Get the command completion status and command id indicated by the second entry in CQ
    logging.info(cq[1].status)
    logging.info(cq[1].cid)

    # The simulator runs both (a duplicate CID is the host's error, §4.2 of the spec
    # leaves the controller's answer open): both complete, both name CID 1.
    assert (cq[0].cid, cq[1].cid) == (1, 1)
    assert (cq[0].status, cq[1].status) == (0, 0)
    # SQ Head: the simulator posts each completion with the head as it was then (1, 2);
    # QEMU's controller fetches both before posting either (2, 2). Both are right
    # (docs/qemu.md).
    assert cq[0].sqhd in (1, 2) and cq[1].sqhd == 2


def test_aer_doorbell_out_of_range(nvme0, buf):
    # Send an AER command
    nvme0.aer()
    # Create a pair of CQ and SQ with a queue depth of 16
    cq = IOCQ(nvme0, 4, 16, PRP(16*16))
    sq = IOSQ(nvme0, 4, 16, PRP(16*64), cq.id)
    # Update the SQ tail to 20, which exceeds the SQ depth
    with pytest.warns(UserWarning, match="AER notification is triggered: 0x10100"):
        sq.tail = 20
        time.sleep(0.1)
        nvme0.getfeatures(7).waitdone()
    # Send get logpage command to clear asynchronous events
    nvme0.getlogpage(1, buf, 512).waitdone()
    #Delete SQ and CQ
    sq.delete()
    cq.delete()

    assert (sq.id, sq.cqid, cq.id) == (4, 4, 4)
    # The event was cleared by the log page read: another invalid value raises it again.
    nvme0.aer()
    cq = IOCQ(nvme0, 4, 16, PRP(16*16))
    sq = IOSQ(nvme0, 4, 16, PRP(16*64), cq.id)
    with pytest.warns(UserWarning, match="AER notification is triggered: 0x10100"):
        sq.tail = 17
        time.sleep(0.1)
        nvme0.getfeatures(7).waitdone()
    nvme0.getlogpage(1, buf, 512).waitdone()
    sq.delete()
    cq.delete()
    # Both ids are free again.
    cq = IOCQ(nvme0, 4, 16, PRP(16*16))
    cq.delete()


def test_metamode_qids_are_kept_from_qpairs(nvme0):
    cq = IOCQ(nvme0, 1, 4, PRP(4*16))
    sq = IOSQ(nvme0, 1, 4, PRP(4*64), cq=cq)
    q = Qpair(nvme0, 8)
    assert q.sqid != 1
    q.delete()
    sq.delete()
    cq.delete()
    q = Qpair(nvme0, 8)
    assert q.sqid == 1
    q.delete()


def test_metamode_queues_in_prp_lists(nvme0):
    # A PRPList as queue memory asks for a non-contiguous queue (PC=0), which only a
    # controller with CAP.CQR = 0 takes (the simulator; QEMU's sets CQR).
    if nvme0.cap & (1 << 16):
        pytest.skip("CAP.CQR = 1: the controller requires contiguous queues")
    # 300 entries spread over pages the list names.
    cql, sql = PRPList(), PRPList()
    for i in range(2):
        cql[i] = PRP()
    for i in range(5):
        sql[i] = PRP()
    cq = IOCQ(nvme0, 1, 300, cql)
    sq = IOSQ(nvme0, 1, 300, sql, cq=cq)
    buf = PRP(512)
    # 310 writes: both queues wrap, the phase tag flips, every page boundary is crossed.
    for i in range(310):
        sq.write(cid=i, nsid=1, lba=i, lba_count=1, prp1=buf)
        sq.tail = (sq.tail + 1) % 300
        cqe = cq.wait_pbit(i % 300, 1 - (i // 300) % 2)
        assert cqe.cid == i and cqe.status == 0
        cq.head = (i + 1) % 300
    sq.delete()
    cq.delete()


def test_metamode_refusals_warn_and_raise(nvme0):
    cq = IOCQ(nvme0, 1, 4, PRP(4*16))
    # Queue id in use: 01/01 Invalid Queue Identifier.
    with pytest.warns(UserWarning, match="ERROR status: 01/01"), pytest.raises(QpairCreationError):
        IOCQ(nvme0, 1, 4, PRP(4*16))
    # A PRPList entry with an offset: 00/13 PRP Offset Invalid (NVMe 1.4 section 5.3).
    # A controller that requires contiguous queues (CAP.CQR = 1) refuses PC = 0 first:
    # 00/02 Invalid Field in Command (section 5.3, PC).
    refusal = "ERROR status: 00/02" if nvme0.cap & (1 << 16) else "ERROR status: 00/13"
    bad = PRPList()
    page = PRP()
    page.offset = 0x40
    bad[0] = page
    with pytest.warns(UserWarning, match=refusal), pytest.raises(QpairCreationError):
        IOCQ(nvme0, 2, 4, bad)
    cq.delete()
    with pytest.raises(RuntimeError):
        cq.head = 0
