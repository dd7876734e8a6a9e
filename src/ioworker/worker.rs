//! The worker thread: queue pair, buffers, the submit/complete loop, pacing, stop rules,
//! verification and statistics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::config::{IoWorkerConfig, OnReset, Resolved};
use super::generator::{Generator, Io};
use super::result::{IoWorkerResult, code};
use super::stats::{CmdlogEntry, Stats, iops_consistency, percentile_us};
use super::verify::{self, FlushTicket, Landing, Miscompare, PatternPool, VerifyTable, next_gen};
use crate::driver::{Completion, Controller, CplKind, DataPtr, DriverError, Namespace, QPair, QpairOptions};
use crate::nvme::features::fid;
use crate::nvme::identify::DeallocatedRead;
use crate::nvme::{Sqe, Status};
use crate::transport::DmaBuffer;
use crate::util::rng::Rng;

/// How long a stopped worker waits for its outstanding commands before it gives up on
/// them and returns.
const STOP_GRACE: Duration = Duration::from_millis(250);
/// How far past `time` a worker may run before it gives up draining (PyNVMe: 30 s).
const OVERRUN: Duration = Duration::from_secs(30);
/// The end of the message of a command a reset or power loss took away.
const BY_RESET: &str = " by a reset or power loss";
/// How long a worker with `on_reset: resume` waits for the controller to come back.
const RESUME_WAIT: Duration = Duration::from_secs(120);
/// Empty polls after which the worker looks at its deferred I/Os again, and from twice as
/// many on, every as many, yields its core: with more threads than cores (the
/// simulator's among them), a worker that only spins holds the core its completions wait
/// for.
const IDLE_AFTER: u32 = 64;
/// The empty poll from which the worker counts itself idle (for `cpu_usage`): one clock
/// read per wait, spent while there is nothing to do, and a short wait is still a wait.
const IDLE_FROM: u32 = 2;

/// I/Os that may wait for LBA locks: `DEFERRED_PER_SLOT` per slot, at least `MIN_DEFERRED`.
const DEFERRED_PER_SLOT: usize = 4;
/// See `DEFERRED_PER_SLOT`.
const MIN_DEFERRED: usize = 64;

static WORKER_IDS: AtomicU64 = AtomicU64::new(1);

/// A configured worker, not yet started.
#[derive(Debug)]
pub struct IoWorker {
    ns: Namespace,
    cfg: IoWorkerConfig,
    resolved: Resolved,
    gate: Option<(Arc<StartGate>, Duration)>,
}

/// Starts several workers together (the workers of a phase): each gets ready, then waits
/// for the gate to name a start instant and begins its own delay after it.
#[derive(Debug, Default)]
pub struct StartGate {
    at: std::sync::Mutex<Option<Instant>>,
    cv: std::sync::Condvar,
}

impl StartGate {
    /// Names the start instant and wakes every waiting worker.
    pub fn open(&self, at: Instant) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        self.cv.notify_all();
    }

    /// Waits for the gate to open (`None` when asked to stop first).
    fn wait(&self, stop: &AtomicBool) -> Option<Instant> {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(t) = *at {
                return Some(t);
            }
            if stop.load(Ordering::Acquire) {
                return None;
            }
            at = self.cv.wait_timeout(at, Duration::from_millis(10)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// Counters a running worker publishes for progress displays.
#[derive(Debug, Default)]
pub struct Live {
    /// Commands completed.
    pub ios: AtomicU64,
    /// Commands failed.
    pub errors: AtomicU64,
}

/// A started worker.
#[derive(Debug)]
pub struct RunningWorker {
    result: Receiver<IoWorkerResult>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    thread: Option<JoinHandle<()>>,
}

impl Namespace {
    /// Prepares an I/O worker on this namespace, checking every parameter.
    pub fn ioworker(&self, cfg: IoWorkerConfig) -> Result<IoWorker, super::ConfigError> {
        let max_entries = self.controller().cap().max_queue_entries();
        let resolved = cfg.resolve(self.nlba(), max_entries)?;
        Ok(IoWorker { ns: self.clone(), cfg, resolved, gate: None })
    }
}

impl IoWorker {
    /// Begins I/O `delay` after the instant `gate` opens with (instead of `start_time`).
    pub fn gated(mut self, gate: Arc<StartGate>, delay: Duration) -> Self {
        self.gate = Some((gate, delay));
        self
    }

    /// Starts the worker thread and returns once its queue pair and buffers exist (or
    /// failed: the error is then in the result).
    pub fn start(self) -> RunningWorker {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (res_tx, res_rx) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let (s, l) = (stop.clone(), live.clone());
        let thread = std::thread::Builder::new().name(format!("nvplan-ioworker-ns{}", self.ns.nsid)).spawn(move || run(self, s, l, ready_tx, res_tx));
        match thread {
            Ok(t) => {
                let _ = ready_rx.recv();
                RunningWorker { result: res_rx, stop, live, thread: Some(t) }
            }
            Err(e) => {
                let (tx, rx) = mpsc::sync_channel(1);
                let r = IoWorkerResult { error: code::INIT_FAIL, error_message: Some(format!("cannot start the worker thread: {e}")), ..Default::default() };
                let _ = tx.send(r);
                RunningWorker { result: rx, stop, live, thread: None }
            }
        }
    }

    /// Starts the worker and waits for its result.
    pub fn run(self) -> IoWorkerResult {
        self.start().close()
    }
}

impl RunningWorker {
    /// Waits for the worker to finish and returns its result.
    pub fn close(mut self) -> IoWorkerResult {
        let r = self.result.recv().unwrap_or_else(|_| IoWorkerResult {
            error: code::INIT_FAIL,
            error_message: Some("the worker thread ended without a result".into()),
            ..Default::default()
        });
        self.settle();
        r
    }

    /// Waits (5 s at most: a dead device could make it slow) for the thread to delete its
    /// queue pair after sending the result, so its queue ID is free again when the caller
    /// goes on, as a script that creates a queue pair next expects.
    fn settle(&mut self) {
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    /// Asks the worker to stop now: no new I/O; it waits briefly for outstanding commands
    /// and returns its partial result (error -7).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits up to `timeout` for the result.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<IoWorkerResult> {
        match self.result.recv_timeout(timeout) {
            Ok(r) => {
                self.settle();
                Some(r)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Some(IoWorkerResult { error: code::INIT_FAIL, error_message: Some("the worker thread ended without a result".into()), ..Default::default() })
            }
        }
    }

    /// Live counters.
    pub fn live(&self) -> &Live {
        &self.live
    }
}

/// Opcodes whose LBA range the worker locks and tracks.
fn has_lba_range(op: u8) -> bool {
    matches!(op, 0x01 | 0x02 | 0x04 | 0x05 | 0x08 | 0x09 | 0x0c)
}

/// Opcodes that change the contents of their LBAs.
fn changes_data(op: u8) -> bool {
    matches!(op, 0x01 | 0x04 | 0x08 | 0x09)
}

/// Pins the calling thread to one CPU.
fn pin(cpu: usize) -> Result<(), String> {
    crate::util::cpus::pin_current(&[cpu]).map_err(|e| format!("cpu_id {cpu}: cannot pin the worker there ({e}); this host has {} CPUs", available_cpus()))
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

struct Slot {
    io: Io,
    locked: bool,
    /// A read with an LBA whose content the table knows, so its data will be compared.
    compared: bool,
}

struct Worker {
    cfg: IoWorkerConfig,
    r: Resolved,
    nsid: u32,
    lba: usize,
    q: QPair,
    gen_: Generator,
    rng: Rng,
    table: Option<Arc<VerifyTable>>,
    pool: Option<Arc<PatternPool>>,
    /// Per slot: write buffer, read buffer, DSM range.
    wbuf: Vec<DmaBuffer>,
    rbuf: Vec<DmaBuffer>,
    dsm: Vec<DmaBuffer>,
    max_lbas: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// I/Os waiting for LBA locks, oldest first.
    deferred: std::collections::VecDeque<Io>,
    /// The next I/O, held back because it is not due yet (pacing).
    held: Option<Io>,
    /// Deferred I/Os are worth trying again: this worker released LBA locks, or its last
    /// poll found nothing (another worker may have released them).
    unlocked: bool,
    stats: Stats,
    res: IoWorkerResult,
    serial: u64,
    op_counts: [u64; 256],
    sent: u64,
    generated: u64,
    lbas_generated: u64,
    finishing: bool,
    start: Instant,
    /// `slow_latency` in nanoseconds.
    slow_ns: u64,
    live: Arc<Live>,
    /// The controller's count of power losses when completions were last polled.
    power_losses: u64,
    /// That count when the queue pair was created: while it is unchanged, every command on
    /// the pair ran after every power loss so far.
    pair_losses: u64,
    /// Ambiguous LBAs the read being completed settled, and what they showed.
    settles: Vec<(u64, u8)>,
    /// The table's states of the LBAs of the I/O at hand.
    lba_states: Vec<verify::LbaState>,
    /// Per slot: what an outstanding Flush makes durable.
    tickets: Vec<Option<FlushTicket>>,
}

/// Whether writes land in a volatile write cache (Identify VWC and Set Features 06h).
fn write_cache_on(ctrl: &Controller) -> bool {
    ctrl.identify().vwc_present() && ctrl.get_features(fid::VOLATILE_WRITE_CACHE, 0).map_or(true, |v| v & 1 != 0)
}

/// The verification table of a namespace in its current format, made on first use.
pub(crate) fn table_of(ns: &Namespace) -> std::io::Result<Arc<VerifyTable>> {
    let lba = ns.lba_size();
    ns.controller().attachment::<VerifyTable, std::io::Error>(ns.nsid as u64 | (lba as u64) << 32, || {
        VerifyTable::new(ns.nlba(), lba, ns.id.deallocated_read_value() == DeallocatedRead::Zeroes)
    })
}

fn fail(res_tx: &SyncSender<IoWorkerResult>, ready: &SyncSender<()>, code: i32, msg: String) {
    let _ = ready.send(());
    let _ = res_tx.send(IoWorkerResult { error: code, error_message: Some(msg), ..Default::default() });
}

fn run(w: IoWorker, stop: Arc<AtomicBool>, live: Arc<Live>, ready: SyncSender<()>, res_tx: SyncSender<IoWorkerResult>) {
    let IoWorker { ns, cfg, resolved, gate } = w;
    let ctrl = ns.controller().clone();
    if let Some(cpu) = cfg.cpu_id
        && let Err(e) = pin(cpu)
    {
        return fail(&res_tx, &ready, code::INIT_FAIL, e);
    }
    let lba = ns.lba_size();
    if !lba.is_power_of_two() || lba < 512 || ns.id.current_format().ms != 0 {
        let msg = format!(
            "namespace {} uses {lba}-byte LBAs with {} bytes of metadata; the worker needs 512 bytes or more and no metadata",
            ns.nsid,
            ns.id.current_format().ms
        );
        return fail(&res_tx, &ready, code::ILLEGAL_SECTOR_SIZE, msg);
    }
    let max_lbas = resolved.sizes.iter().map(|s| s.0).chain(cfg.io_sequence.iter().flatten().map(|s| s.nlb)).max().unwrap_or(1) as usize;
    let max_transfer = ctrl.info().max_transfer;
    if max_lbas * lba > max_transfer {
        let msg = format!("io_size {max_lbas} LBAs ({} bytes) is above the controller's MDTS limit of {max_transfer} bytes", max_lbas * lba);
        return fail(&res_tx, &ready, code::IO_SIZE_ABOVE_MDTS, msg);
    }
    let verifying = !cfg.verify_disable;
    let writes = resolved.ops.iter().any(|o| changes_data(o.0)) || cfg.io_sequence.iter().flatten().any(|s| changes_data(s.opcode));
    let blind_writer = !verifying && writes;
    let table = match table_of(&ns) {
        Ok(t) => t,
        Err(e) => return fail(&res_tx, &ready, code::INIT_FAIL, format!("cannot allocate the verification table for {} LBAs: {e}", ns.nlba())),
    };
    table.sync_epoch(ctrl.data_epoch());
    table.set_volatile(write_cache_on(&ctrl));
    let losses = ctrl.power_losses();
    table.power_lost(losses);
    if let Err(e) = table.join(verifying, blind_writer) {
        return fail(&res_tx, &ready, code::INIT_FAIL, e.to_string());
    }
    let leave = |t: &VerifyTable| t.leave(verifying, blind_writer);
    let qdepth = resolved.qdepth as usize;
    // Waiting for a controller that is down ends with the worker's stop or its run time.
    let wait_until = cfg.time.map(|t| Instant::now() + t);
    let q = match create_first_qpair(&ctrl, QpairOptions { entries: qdepth as u32 + 1, prio: cfg.qprio, ..Default::default() }, cfg.on_reset, &stop, wait_until)
    {
        Ok(q) => q,
        Err(e) => {
            leave(&table);
            return fail(&res_tx, &ready, code::CREATE_QPAIR, format!("cannot create the worker's queue pair: {e}"));
        }
    };
    let io_bytes = max_lbas * lba;
    // Write buffers, read buffers, then the DSM ranges.
    let rslots = read_slots(qdepth, verifying);
    let pool_bytes = (qdepth + rslots) * io_bytes + qdepth * 16;
    let pool_mem = match ctrl.dma(pool_bytes) {
        Ok(b) => b,
        Err(e) => {
            leave(&table);
            return fail(&res_tx, &ready, code::BUFFER_ALLOC, format!("cannot allocate {pool_bytes} bytes of DMA buffers: {e}"));
        }
    };
    let pool = table.pattern(cfg.ptype, cfg.pvalue);
    let wbuf: Vec<DmaBuffer> = (0..qdepth).map(|s| pool_mem.slice(s * io_bytes, io_bytes)).collect();
    let rbuf = read_buffers(&pool_mem, qdepth * io_bytes, qdepth, io_bytes, rslots);
    let dsm: Vec<DmaBuffer> = (0..qdepth).map(|s| pool_mem.slice((qdepth + rslots) * io_bytes + s * 16, 16)).collect();
    for (s, b) in wbuf.iter().enumerate() {
        for i in 0..max_lbas {
            b.write(i * lba, pool.slice((s * max_lbas + i) % pool.slots()));
        }
    }
    let gen_ = Generator::new(&cfg, &resolved, ns.nlba());
    let stats = Stats::new(
        !cfg.output_percentile_latency.is_empty(),
        cfg.output_io_per_second.then(|| cfg.time.unwrap_or(Duration::from_secs(60))),
        cfg.output_cmdlog_list,
        cfg.cmdlog_error_only,
        cfg.output_percentile_latency_opcode,
        cfg.time,
    );
    let mut w = Worker {
        nsid: ns.nsid,
        lba,
        q,
        gen_,
        rng: Rng::stream(cfg.seed, 0x5617),
        table: verifying.then(|| table.clone()),
        pool: Some(pool),
        wbuf,
        rbuf,
        dsm,
        max_lbas,
        slots: (0..qdepth).map(|_| Slot { io: Io { slba: 0, nlb: 0, opcode: 0, at_us: None }, locked: false, compared: false }).collect(),
        free: (0..qdepth as u32).rev().collect(),
        deferred: std::collections::VecDeque::new(),
        held: None,
        unlocked: false,
        stats,
        res: IoWorkerResult::default(),
        serial: WORKER_IDS.fetch_add(1, Ordering::Relaxed) << 48,
        op_counts: [0; 256],
        sent: 0,
        generated: 0,
        lbas_generated: 0,
        finishing: false,
        start: Instant::now(),
        slow_ns: cfg.slow_latency.as_nanos().min(u64::MAX as u128) as u64,
        live,
        power_losses: ctrl.power_losses(),
        pair_losses: losses,
        settles: Vec::new(),
        lba_states: Vec::with_capacity(max_lbas),
        tickets: (0..qdepth).map(|_| None).collect(),
        r: resolved,
        cfg,
    };
    let _ = ready.send(());
    if let Some((gate, delay)) = gate
        && let Some(t0) = gate.wait(&stop)
    {
        w.cfg.start_time = Some(t0 + delay);
    }
    if let Some(t) = w.cfg.start_time {
        while Instant::now() < t && !stop.load(Ordering::Acquire) {
            std::thread::sleep((t - Instant::now()).min(Duration::from_millis(10)));
        }
    }
    // The run (time, pacing, io_sequence, cmdlog times) starts when I/O starts.
    w.start = Instant::now();
    w.main_loop(&stop);
    let result = w.finish();
    // Writes of the host are counted in one sequence, the workers' too (see direct::stamp).
    super::direct::advance_token(result.lba_count_write);
    let _ = res_tx.send(result);
    // The queue pair is deleted when `w` drops, after the result went out.
    drop(w);
    leave(&table);
}

impl Worker {
    fn build(&self, io: &Io) -> Sqe {
        let mut s = Sqe::new(io.opcode, self.nsid);
        if io.opcode == 0x09 {
            // Dataset Management: one range, Deallocate (§6.7).
            s.dw[10] = 0;
            s.dw[11] = 1 << 2;
        } else if has_lba_range(io.opcode) {
            s.set_slba(io.slba);
            s.set_nlb(io.nlb);
            s.set_io_flags(self.cfg.io_flags);
        }
        s
    }

    fn main_loop(&mut self, stop: &AtomicBool) {
        let time_limit = self.cfg.time.map(|t| self.start + t);
        let hard_limit = self.start + self.cfg.time.unwrap_or(super::config::MAX_TIME) + OVERRUN;
        let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.res.test_start_sec = wall.as_secs();
        self.res.test_start_nsec = wall.subsec_nanos();
        let mut now = self.start;
        let mut batch: Vec<Completion> = Vec::with_capacity(self.slots.len());
        let mut empty: u32 = 0;
        let mut idle_since: Option<Instant> = None;
        let mut idle = Duration::ZERO;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            if stop_deadline.is_none() && stop.load(Ordering::Relaxed) {
                self.finishing = true;
                self.set_error(code::TERMINATED, "stopped from outside".into());
                stop_deadline = Some(Instant::now() + STOP_GRACE);
            }
            let mut pace_wait = None;
            // Nothing goes to a pair a reset has begun to take away.
            let valid = self.q.is_valid();
            if stop_deadline.is_none() && valid {
                let mut stamp = None;
                pace_wait = self.submit_some(&mut stamp, &mut now, time_limit);
            }
            self.q.ring();
            batch.clear();
            self.power_losses = self.q.controller().power_losses();
            self.q.poll(self.slots.len(), |c| batch.push(*c));
            if !batch.is_empty() {
                now = Instant::now();
                if let Some(s) = idle_since.take() {
                    idle += now - s;
                }
                empty = 0;
                let now_ns = self.ns_since_start(now);
                for (i, c) in batch.iter().enumerate() {
                    if let Some(next) = batch.get(i + 1) {
                        self.prefetch_read_data(next.ctx as usize);
                    }
                    self.complete(c, now_ns);
                }
                self.live.ios.store(self.res.io_count_read + self.res.io_count_nonread, Ordering::Relaxed);
                self.live.errors.store(self.res.error_count, Ordering::Relaxed);
            } else {
                empty += 1;
                if empty == IDLE_FROM {
                    // Idle from here to the next completion: PyNVMe counts as busy only
                    // submissions and polls that reaped something.
                    now = Instant::now();
                    idle_since = Some(now);
                }
                if empty.is_multiple_of(IDLE_AFTER) {
                    // Locks another worker holds are released without telling this one.
                    self.unlocked |= !self.deferred.is_empty();
                    now = Instant::now();
                    if empty > IDLE_AFTER {
                        std::thread::yield_now();
                    }
                }
            }
            if time_limit.is_some_and(|t| now >= t) {
                self.finishing = true;
            }
            if !valid && !self.finishing && stop_deadline.is_none() {
                if self.cfg.on_reset == OnReset::Resume {
                    if !self.resume(stop, time_limit) {
                        self.finishing = true;
                    }
                    now = Instant::now();
                } else if self.free.len() == self.slots.len() {
                    // The reset found nothing in flight to abort, so nothing will end the
                    // run as an aborted command does: end it here.
                    self.set_error(code::TERMINATED, format!("the queue pair was taken away with no command in flight{}", self.why_aborted()));
                    self.finishing = true;
                    self.drop_unsent();
                }
            }
            if time_limit.is_some_and(|t| now >= t) || stop_deadline.is_some() {
                // Out of time (or stopped): what was generated but not sent is dropped.
                self.drop_unsent();
            }
            if self.finishing && self.free.len() == self.slots.len() && self.nothing_pending() {
                break;
            }
            if stop_deadline.is_some_and(|d| now >= d) || now >= hard_limit {
                if now >= hard_limit {
                    self.set_error(
                        code::WORKER_TIMEOUT,
                        format!("still {} commands outstanding {} s after the run time", self.slots.len() - self.free.len(), OVERRUN.as_secs()),
                    );
                }
                self.abandon_outstanding();
                break;
            }
            if let Some(wait) = pace_wait
                && self.free.len() == self.slots.len()
                && self.deferred.is_empty()
                && wait > Duration::from_micros(100)
            {
                // Nothing outstanding and the next I/O is not due yet: sleep, not spin.
                let s = Instant::now();
                std::thread::sleep(wait - Duration::from_micros(50));
                idle += s.elapsed();
                now = Instant::now();
            }
        }
        if let Some(s) = idle_since {
            idle += Instant::now() - s;
        }
        let elapsed = self.start.elapsed();
        self.res.mseconds = elapsed.as_millis() as u64;
        self.res.cpu_usage = if elapsed.is_zero() { 0.0 } else { (1.0 - idle.as_secs_f64() / elapsed.as_secs_f64()).clamp(0.0, 1.0) };
    }

    /// The next I/O to send: one held back by pacing, else a new one from the generator
    /// (`None` once a stop rule says no more I/O is to be generated).
    fn next_io(&mut self) -> Option<Io> {
        if let Some(io) = self.held.take() {
            return Some(io);
        }
        if self.finishing {
            return None;
        }
        if (self.r.io_count > 0 && self.generated >= self.r.io_count) || (self.r.lba_count > 0 && self.lbas_generated >= self.r.lba_count) {
            self.finishing = true;
            return None;
        }
        let table = &self.table;
        let Some(mut io) = self.gen_.next(|l| table.as_ref().is_some_and(|t| t.state(l) == verify::UNCORRECTABLE)) else {
            self.finishing = true;
            return None;
        };
        if self.r.lba_count > 0 && has_lba_range(io.opcode) {
            io.nlb = io.nlb.min((self.r.lba_count - self.lbas_generated) as u32);
        }
        self.generated += 1;
        if has_lba_range(io.opcode) {
            self.lbas_generated += io.nlb as u64;
        }
        Some(io)
    }

    /// Whether everything generated has been sent.
    fn nothing_pending(&self) -> bool {
        self.held.is_none() && self.deferred.is_empty()
    }

    /// Submits while slots are free and I/O is due: first I/Os that waited for LBA locks
    /// (when locks may have been released since the last try), then new ones. An I/O whose LBAs
    /// another I/O holds waits in a queue while later ones go ahead, as PyNVMe's queued
    /// requests do. Returns how long until the next I/O is due when pacing holds it back.
    /// A paced I/O due at or after `time_limit` is never sent: a late wake-up near the end
    /// must not send I/Os that belong after the run time.
    fn submit_some(&mut self, stamp: &mut Option<Instant>, now: &mut Instant, time_limit: Option<Instant>) -> Option<Duration> {
        let mut i = 0;
        if !std::mem::take(&mut self.unlocked) {
            i = self.deferred.len();
        }
        while i < self.deferred.len() && !self.free.is_empty() {
            let io = self.deferred[i];
            if self.lock(&io, false) {
                self.deferred.remove(i);
                self.send(io, true, stamp);
            } else {
                i += 1;
            }
        }
        while !self.free.is_empty() {
            let io = self.next_io()?;
            // Pacing: the k-th I/O goes out at start + k / iops (or at its io_sequence
            // time); late I/Os go out at once, so a stall is caught up, never skipped.
            let due = if let Some(us) = io.at_us {
                Some(self.start + Duration::from_micros(us))
            } else if self.cfg.iops > 0 {
                Some(self.start + Duration::from_nanos((self.sent as u128 * 1_000_000_000 / self.cfg.iops as u128) as u64))
            } else {
                None
            };
            if let Some(d) = due {
                if time_limit.is_some_and(|t| d >= t) {
                    self.held = Some(io);
                    self.finishing = true;
                    return None;
                }
                if *now < d {
                    *now = Instant::now();
                }
                if *now < d {
                    self.held = Some(io);
                    return Some(d - *now);
                }
            }
            if self.table.is_some() && has_lba_range(io.opcode) && !self.lock(&io, true) {
                // A bounded wait: each retry walks the whole queue, so its length is the
                // cost of every completion, and beyond a few times qdepth the generator only
                // runs ahead of the drive. Enough that a stalled command's LBAs do not stop
                // the worker at once.
                if self.deferred.len() < (DEFERRED_PER_SLOT * self.slots.len()).max(MIN_DEFERRED) {
                    self.deferred.push_back(io);
                    continue;
                }
                // Too many waiting: hold this one until locks free up.
                self.held = Some(io);
                return None;
            }
            let locked = self.table.is_some() && has_lba_range(io.opcode);
            self.send(io, locked, stamp);
        }
        None
    }

    /// Locks the I/O's LBAs; `first` for an I/O not tried before (see
    /// [`VerifyTable::try_lock`]). Their states are left in `lba_states` for `prepare`.
    fn lock(&mut self, io: &Io, first: bool) -> bool {
        self.table.as_ref().is_none_or(|t| t.try_lock_states(io.slba, io.nlb as u64, first, changes_data(io.opcode), &mut self.lba_states))
    }

    /// Puts one I/O (with its LBAs locked, if `locked`) into a free slot and the SQ.
    fn send(&mut self, io: Io, locked: bool, stamp: &mut Option<Instant>) {
        let slot = self.free.pop().expect("caller checked for a free slot");
        let sgl = self.cfg.sgl_percentage > 0 && self.rng.below(100) < self.cfg.sgl_percentage as u64;
        self.prepare(slot as usize, &io, locked);
        let sqe = self.build(&io);
        let s = slot as usize;
        let len = io.nlb as usize * self.lba;
        // Data direction from the opcode's low bits (NVMe 1.4 Figure 139).
        let buf = match io.opcode & 3 {
            _ if io.opcode == 0x09 => Some((&self.dsm[s], 16)),
            1 => Some((&self.wbuf[s], len)),
            2 | 3 => Some((&self.rbuf[s], len)),
            _ => None,
        };
        let data = match buf {
            None => DataPtr::None,
            Some((b, n)) => {
                let (iova, len) = (b.iova(), n.min(b.len()));
                if sgl { DataPtr::SglAt { iova, len } } else { DataPtr::PrpAt { iova, len } }
            }
        };
        // Field by field: with the struct copy, `send` held 20 % of the samples of a
        // never-written read run, 6 % after (14.2–14.5 M IOPS against 13.5–14.1 M).
        // `lock` left the states of a locked I/O's LBAs.
        let compared = locked && io.opcode == 0x02 && self.lba_states.iter().any(|st| st.state != verify::UNKNOWN);
        let sl = &mut self.slots[s];
        (sl.io.slba, sl.io.nlb, sl.io.opcode, sl.io.at_us, sl.locked, sl.compared) = (io.slba, io.nlb, io.opcode, io.at_us, locked, compared);
        // One clock read stamps the whole batch (latency is measured from here).
        let at = *stamp.get_or_insert_with(Instant::now);
        if let Err(e) = self.q.submit_at(&sqe, data, s as u64, at) {
            // Cannot happen with a free slot; treat as an error of this I/O.
            self.release(s, None);
            self.free.push(slot);
            self.set_error(code::IO_CMD_ERROR, format!("cannot submit: {e}"));
            self.finishing = true;
            return;
        }
        self.sent += 1;
    }

    /// Fills what the command needs before it goes out: write trailers, the DSM range.
    fn prepare(&mut self, s: usize, io: &Io, locked: bool) {
        if io.opcode == 0x00 {
            // What this Flush covers is fixed when it is submitted (NVMe 2.0 §5.15).
            self.tickets[s] = self.table.as_ref().map(|t| t.flush_begin());
            return;
        }
        if io.opcode == 0x09 {
            self.dsm[s].write(0, &crate::nvme::cmd::dsm_range(io.slba, io.nlb));
            return;
        }
        if io.opcode != 0x01 || !locked {
            return;
        }
        let (Some(_), Some(pool)) = (&self.table, &self.pool) else { return };
        let base = self.wbuf[s].as_ptr();
        // `lock` just left the states of this I/O's LBAs.
        debug_assert_eq!(self.lba_states.len(), io.nlb as usize);
        for (i, st) in self.lba_states.iter().enumerate() {
            let l = io.slba + i as u64;
            let k = (s * self.max_lbas + i) % pool.slots();
            self.serial += 1;
            // SAFETY: the slot's write buffer is free (no command uses it) and holds
            // `max_lbas` LBAs; `i < nlb <= max_lbas`.
            unsafe { verify::stamp(base.add(i * self.lba), l, self.serial, pool, k, next_gen(st.state)) };
        }
    }

    /// Unlocks the slot's LBAs, setting their state from the command's outcome.
    fn release(&mut self, s: usize, outcome: Option<(CplKind, Status)>) {
        let slot = &self.slots[s];
        if !slot.locked {
            return;
        }
        let Some(t) = &self.table else { return };
        let io = slot.io;
        // The state a data-changing command leaves when it takes effect.
        let applied = |old: u8| match io.opcode {
            0x01 => next_gen(old),
            0x04 => verify::UNCORRECTABLE,
            0x08 => verify::ZEROES,
            _ if t.dealloc_zeroes => verify::ZEROES,
            _ => verify::UNKNOWN,
        };
        let (lba, n) = (io.slba, io.nlb as u64);
        match outcome {
            _ if !changes_data(io.opcode) => {
                let settles = &self.settles;
                for &(l, found) in settles {
                    t.settle(l, found);
                }
                t.unlock_range(lba, n, |l, _| settles.iter().find(|s| s.0 == l).map(|s| s.1));
                self.settles.clear();
            }
            // Never completed: it may or may not have happened.
            None | Some((CplKind::TimedOut | CplKind::Aborted, _)) => t.unlock_write(lba, n, |_, old| applied(old), Landing::Maybe, || false),
            Some((CplKind::Device, st)) if st.is_success() => {
                // FUA (CDW12 bit 30) makes Write and Write Zeroes durable at completion.
                let fua = matches!(io.opcode, 0x01 | 0x08) && self.cfg.io_flags & 0x4000 != 0;
                let landing = if fua || !t.volatile() { Landing::Durable } else { Landing::Volatile };
                let (ctrl, seen) = (self.q.controller(), self.power_losses);
                t.unlock_write(lba, n, |_, old| applied(old), landing, || ctrl.power_losses() != seen);
            }
            // Failed: a write keeps the old data; the others leave it unknown.
            Some(_) if io.opcode == 0x01 => t.unlock_range(lba, n, |_, _| None),
            Some(_) => t.unlock_range(lba, n, |_, _| Some(verify::UNKNOWN)),
        }
        self.unlocked = true;
        self.slots[s].locked = false;
    }

    fn set_error(&mut self, c: i32, msg: String) {
        // The first error wins, except that a slow I/O gives way to a real failure.
        if self.res.error == 0 || (self.res.error == code::SLOW_IO && c != code::SLOW_IO) {
            self.res.error = c;
            self.res.error_message = Some(format!("{}: {msg}", code::name(c)));
        }
    }

    /// Asks for the data of slot `s`'s read, if it is to be compared, while the completion
    /// before it is handled: the device's writes left the lines in its cache, and fetched
    /// one at a time by the compare they made verified reads of written blocks on the
    /// simulator 1.19–1.32 M IOPS where the two CPUs are far apart (1.48–1.52 M with this).
    /// Up to the first 4 KiB, the size measured. Never for data nothing compares (LBAs
    /// of unknown content): fetched for nothing, those lines went back to the device for
    /// its next write into the buffer, and such reads fell from 6 M IOPS to 2.4 M.
    fn prefetch_read_data(&self, s: usize) {
        let sl = &self.slots[s];
        if sl.compared {
            let p = self.rbuf[s].as_ptr();
            for off in (0..(sl.io.nlb as usize * self.lba).min(4096)).step_by(64) {
                crate::util::prefetch(p.wrapping_add(off), false);
            }
        }
    }

    /// Verifies a completed read; returns the first miscompare.
    fn verify_read(&mut self, s: usize) -> Option<Miscompare> {
        let t = self.table.as_ref()?;
        let io = self.slots[s].io;
        let mut first = None;
        t.states(io.slba, io.nlb as u64, &mut self.lba_states);
        for (i, st) in self.lba_states.iter().enumerate() {
            let l = io.slba + i as u64;
            let expected = st.state;
            if expected == verify::UNKNOWN {
                continue;
            }
            // SAFETY: the read completed, so the controller is done with this slot's read
            // buffer and no other command references it until the slot is reused; the
            // slice covers LBA `i` of at most `max_lbas`.
            let block = unsafe { std::slice::from_raw_parts(self.rbuf[s].as_ptr().add(i * self.lba), self.lba) };
            let r = verify::check(t, block, l, expected);
            if st.ambiguous() {
                // After a power loss or an interrupted write: one of several states.
                let found = if r.is_ok() { Some(expected) } else { verify::observed(block, l) };
                if let Some(f) = found.filter(|&f| st.may_show(f)) {
                    // A read that may have run before the latest power loss shows a state
                    // that loss may have undone: accepted, but it settles nothing.
                    if self.q.controller().power_losses() == self.pair_losses {
                        self.res.lbas_reverted += (f != expected) as u64;
                        self.settles.push((l, f));
                    }
                    continue;
                }
            }
            if let Err(m) = r {
                self.res.miscompare_count += 1;
                if self.res.miscompares.len() < 16 {
                    self.res.miscompares.push(m.clone());
                }
                first.get_or_insert(m);
            }
        }
        first
    }

    /// Nanoseconds from the worker's start to `t`, the unit of its statistics.
    fn ns_since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Accounts for one completion, polled `now_ns` after the worker's start. Times are
    /// kept in nanoseconds from there: a `Duration` between two `Instant`s costs a
    /// normalisation, and four per I/O took 8 % of a never-written read run's samples.
    fn complete(&mut self, c: &Completion, now_ns: u64) {
        let s = c.ctx as usize;
        let io = self.slots[s].io;
        let mut status = c.status();
        let mut expected = false;
        let mut miscompare = None;
        if c.kind == CplKind::Device && self.slots[s].locked {
            if io.opcode == 0x02 && status.is_success() {
                miscompare = self.verify_read(s);
            }
            // A read or verify of an LBA made uncorrectable is meant to fail.
            if matches!(io.opcode, 0x02 | 0x05 | 0x0c) && status.same_code(Status::UNRECOVERED_READ_ERROR) {
                let t = self.table.as_ref().expect("locked implies a table");
                expected = (io.slba..io.slba + io.nlb as u64).any(|l| t.state(l) == verify::UNCORRECTABLE || t.may_show(l, t.state(l), verify::UNCORRECTABLE));
            }
        }
        if miscompare.is_some() {
            // As PyNVMe: a miscompare completes the I/O with 07/81.
            status = Status::HOST_MISCOMPARE;
        }
        self.release(s, Some((c.kind, status)));
        if let Some(ticket) = self.tickets[s].take()
            && io.opcode == 0x00
            && c.kind == CplKind::Device
            && status.is_success()
            && let Some(t) = &self.table
        {
            t.flush_done(ticket);
        }
        self.free.push(s as u32);
        // Statistics.
        let sent_ns = self.ns_since_start(c.submitted);
        let lat_ns = now_ns.saturating_sub(sent_ns);
        let nlb = if has_lba_range(io.opcode) { io.nlb as u64 } else { 0 };
        if c.kind == CplKind::Device {
            let bytes = if matches!(io.opcode, 0x01 | 0x02) { nlb * self.lba as u64 } else { 0 };
            self.stats.record(io.opcode, lat_ns, now_ns, bytes);
        }
        self.op_counts[io.opcode as usize] += 1;
        if io.opcode == 0x02 {
            self.res.io_count_read += 1;
            self.res.lba_count_read += nlb;
        } else {
            self.res.io_count_nonread += 1;
            self.res.lba_count_nonread += nlb;
        }
        if io.opcode == 0x01 {
            self.res.io_count_write += 1;
            self.res.lba_count_write += nlb;
        }
        let resumed = c.kind == CplKind::Aborted && self.cfg.on_reset == OnReset::Resume;
        if c.kind == CplKind::Aborted {
            self.res.aborted_by_reset += 1;
        }
        let failed = (c.kind != CplKind::Device && !resumed) || (c.kind == CplKind::Device && !status.is_success() && !expected);
        let logged_status = if c.kind == CplKind::Device { status.code() } else { 0x7fff };
        self.stats.log(CmdlogEntry {
            slba: io.slba,
            nlb: io.nlb,
            opcode: io.opcode,
            time_sent_us: sent_ns / 1000,
            time_cplt_us: now_ns / 1000,
            status: if failed || expected { logged_status } else { 0 },
        });
        if expected {
            self.res.expected_errors += 1;
        }
        if lat_ns > self.slow_ns && c.kind == CplKind::Device {
            self.res.slow_io_count += 1;
            self.set_error(
                code::SLOW_IO,
                format!("LBA {:#x}+{} took {} µs (slow_latency {} µs)", io.slba, io.nlb, lat_ns / 1000, self.cfg.slow_latency.as_micros()),
            );
        }
        if failed {
            // Commands a reset took away are counted apart (`aborted_by_reset`).
            self.res.error_count += (c.kind != CplKind::Aborted) as u64;
            let first = self.res.error == 0 || self.res.error == code::SLOW_IO;
            let (code_, msg) = match (c.kind, &miscompare) {
                (CplKind::TimedOut, _) => (code::IO_TIMEOUT, format!("{} LBA {:#x}+{} did not complete in time", opname(io.opcode), io.slba, io.nlb)),
                (CplKind::Aborted, _) => {
                    // Asked only for the message that is kept (the first error).
                    let why = if first { self.why_aborted() } else { BY_RESET };
                    (code::TERMINATED, format!("{} LBA {:#x}+{} was aborted{why}", opname(io.opcode), io.slba, io.nlb))
                }
                (_, Some(m)) => (code::IO_CMD_ERROR, describe(m)),
                _ => (code::IO_CMD_ERROR, format!("{} LBA {:#x}+{} failed: {status}", opname(io.opcode), io.slba, io.nlb)),
            };
            self.set_error(code_, msg);
            if first {
                let mut sqe = self.build(&io);
                sqe.set_cid(c.cid());
                // Nothing is submitted while a batch of completions is handled, so
                // the CID still holds what this command was sent with.
                let [dw0, dw6, dw7, dw8, dw9] = self.q.sent_dptr(c.cid());
                sqe.dw[0] = dw0;
                sqe.dw[6..10].copy_from_slice(&[dw6, dw7, dw8, dw9]);
                self.res.error_cmd = sqe.dw;
                let mut cqe = c.cqe;
                if c.kind == CplKind::Device {
                    cqe.dw[3] = (cqe.dw[3] & 0x1_ffff) | (status.raw() as u32) << 17;
                }
                self.res.error_cpl = cqe.dw;
            }
            if self.cfg.exit_on_error || c.kind == CplKind::Aborted {
                // Nothing more goes out, the I/Os held back for locks or pacing included:
                // after an abort they would go to a queue that is gone.
                self.finishing = true;
                self.drop_unsent();
            }
        }
    }

    /// Why the controller took the worker's commands away: a function that was removed (or
    /// lost power) reads all ones (PCIe).
    fn why_aborted(&self) -> &'static str {
        if self.q.controller().csts().is_all_ones() {
            ": the controller no longer answers (its registers read FFFFFFFFh: removed or powered off)"
        } else {
            BY_RESET
        }
    }

    /// Waits for the controller to come back from a reset or power loss and creates a new
    /// queue pair. False when the run ends first (stop, time) or the pair cannot be made.
    fn resume(&mut self, stop: &AtomicBool, time_limit: Option<Instant>) -> bool {
        let ctrl = self.q.controller().clone();
        let old = self.q.generation();
        match wait_for(|| ctrl.is_ready() && ctrl.generation() != old, stop, time_limit, Instant::now() + RESUME_WAIT) {
            Waited::Ready => {}
            Waited::Stopped => return false,
            Waited::GaveUp => {
                self.set_error(code::TERMINATED, format!("the controller did not come back within {} s of the reset", RESUME_WAIT.as_secs()));
                return false;
            }
        }
        // The controller has stopped since the reset began, so this poll reports the old
        // pair's commands aborted (none before that); account for them before it goes.
        let mut batch = Vec::new();
        self.q.poll(usize::MAX, |c| batch.push(*c));
        let now_ns = self.ns_since_start(Instant::now());
        for c in &batch {
            self.complete(c, now_ns);
        }
        let losses = ctrl.power_losses();
        if let Some(t) = &self.table {
            t.set_volatile(write_cache_on(&ctrl));
            t.power_lost(losses);
        }
        match ctrl.create_qpair(QpairOptions { entries: self.slots.len() as u32 + 1, prio: self.cfg.qprio, ..Default::default() }) {
            Ok(q) => {
                self.pair_losses = losses;
                // The old pair no longer exists on the controller; dropping it sends nothing.
                self.q = q;
                self.res.resumes += 1;
                true
            }
            Err(e) => {
                self.set_error(code::CREATE_QPAIR, format!("cannot create a queue pair after the reset: {e}"));
                false
            }
        }
    }

    /// Gives up on commands that never completed: their LBAs are unlocked as unknown.
    fn abandon_outstanding(&mut self) {
        let busy: Vec<usize> = (0..self.slots.len()).filter(|s| !self.free.contains(&(*s as u32))).collect();
        for s in busy {
            self.release(s, None);
            self.tickets[s] = None;
            self.free.push(s as u32);
        }
        self.drop_unsent();
    }

    /// Drops the I/Os generated but not sent (held back for pacing or LBA locks; none of
    /// them holds a lock).
    fn drop_unsent(&mut self) {
        self.deferred.clear();
        self.held = None;
    }

    fn finish(&mut self) -> IoWorkerResult {
        let st = &self.stats;
        let mut r = std::mem::take(&mut self.res);
        r.latency_max_us = st.latency_max_ns.div_ceil(1000);
        r.latency_average_us = if st.latency_n == 0 { 0 } else { (st.latency_sum_ns / st.latency_n as u128 / 1000) as u64 };
        if !self.cfg.output_percentile_latency.is_empty() {
            let h = st.latency_hist();
            r.percentile_latency = Some(self.cfg.output_percentile_latency.iter().map(|&p| (p, percentile_us(&h, p))).collect());
            r.latency_distribution = st.distribution.clone();
        }
        if let Some(ps) = &st.per_second {
            let full = (r.mseconds / 1000) as usize;
            let v: Vec<u64> = (0..full).map(|i| ps.get(i).copied().unwrap_or(0)).collect();
            r.iops_consistency = iops_consistency(&v, 99.9);
            r.io_per_second = Some(v);
        }
        r.cmdlog = st.cmdlog.as_ref().map(|c| c.to_vec());
        r.op_counts = self.op_counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(o, n)| (o as u8, *n)).collect();
        r.histogram = Some(st.latency_hist());
        r.class_histograms = st.class_hist.clone().map(Some);
        let mut ts = st.series.clone();
        ts.settle();
        r.timeseries = Some(ts);
        r
    }
}

fn opname(op: u8) -> &'static str {
    crate::nvme::NvmOpcode::from(op).name()
}

fn describe(m: &Miscompare) -> String {
    let mut s = format!("data miscompare at LBA {:#x} ({:?}): expected state {}", m.lba, m.kind, m.expected);
    if let Some(g) = m.found_gen {
        s += &format!(", found generation {g}");
    }
    if let Some(l) = m.found_lba {
        s += &format!(" of LBA {l:#x}");
    }
    if let Some(w) = m.found_serial {
        s += &format!(" written by write {:#x} of worker {}", w & 0xffff_ffff_ffff, w >> 48);
    }
    if let Some(b) = m.first_diff {
        s += &format!("; first differing byte at offset {b}");
    }
    s
}

/// Read buffers a worker of `qdepth` slots needs: one each when reads are verified.
/// Without verification nothing reads what reads bring, so every slot's reads land in the
/// same buffer: a buffer per slot would only have the device's writes pass through more
/// of the host's cache, and, on the simulator, through its I/O thread's cache too (never-
/// written reads on the simulator: 17.3–19.8 M IOPS against 16.4–17.8 M).
fn read_slots(qdepth: usize, verifying: bool) -> usize {
    if verifying { qdepth } else { 1 }
}

/// The slots' read buffers: `n` of them ([`read_slots`]) from `base` in `mem`, shared in turn.
fn read_buffers(mem: &DmaBuffer, base: usize, qdepth: usize, io_bytes: usize, n: usize) -> Vec<DmaBuffer> {
    (0..qdepth).map(|s| mem.slice(base + s % n * io_bytes, io_bytes)).collect()
}

/// The worker's first queue pair. A worker that resumes after resets also waits out one
/// that is under way as it starts (an event of its phase may cut the power while the
/// workers set up): it retries once the controller is back, within [`RESUME_WAIT`], and
/// not past `stop` or `wait_until` (the worker's run time: a power cycle that failed
/// leaves the controller down, and waiting for it must not outlast the phase).
fn create_first_qpair(ctrl: &Controller, opts: QpairOptions, on_reset: OnReset, stop: &AtomicBool, wait_until: Option<Instant>) -> Result<QPair, DriverError> {
    let give_up = wait_until.map_or(Instant::now() + RESUME_WAIT, |t| t.min(Instant::now() + RESUME_WAIT));
    loop {
        let generation = ctrl.generation();
        let e = match ctrl.create_qpair(opts) {
            Ok(q) => return Ok(q),
            Err(e) => e,
        };
        // Only a controller that is being reset (or was, during the attempt) is waited for.
        if on_reset != OnReset::Resume || (ctrl.is_ready() && ctrl.generation() == generation) {
            return Err(e);
        }
        if wait_for(|| ctrl.is_ready(), stop, None, give_up) != Waited::Ready {
            return Err(e);
        }
    }
}

/// How a wait for the controller ended.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    Ready,
    /// `stop` was set or the run's time ran out.
    Stopped,
    /// It took longer than the wait allows.
    GaveUp,
}

/// Waits, a millisecond at a time, until `ready()`; not past `stop`, `time_limit` (the
/// run's end) or `give_up`.
fn wait_for(ready: impl Fn() -> bool, stop: &AtomicBool, time_limit: Option<Instant>, give_up: Instant) -> Waited {
    loop {
        let t = Instant::now();
        if stop.load(Ordering::Acquire) || time_limit.is_some_and(|l| t >= l) {
            return Waited::Stopped;
        }
        if t >= give_up {
            return Waited::GaveUp;
        }
        if ready() {
            return Waited::Ready;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::AddressSpace;

    #[test]
    fn unverified_reads_share_one_buffer_and_verified_reads_have_one_per_slot() {
        let space = AddressSpace::new();
        let mem = space.alloc(16 * 4096).unwrap();
        let iovas = |verifying| read_buffers(&mem, 8 * 4096, 8, 4096, read_slots(8, verifying)).iter().map(DmaBuffer::iova).collect::<Vec<_>>();
        let own = iovas(true);
        assert_eq!(own, (0..8).map(|s| mem.iova() + (8 + s) * 4096).collect::<Vec<_>>());
        assert_eq!(iovas(false), vec![mem.iova() + 8 * 4096; 8]);
    }
}
