//! Every fio option the importer knows, what nvplan calls it, and how well it carries over.
//! One table, two users: `nvplan import-fio` decides with it what to do with an option, and
//! plan validation names the nvplan parameter when a plan uses a fio word (`bs`).

/// How an option carries over into a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The plan does the same.
    Exact,
    /// The plan does nearly the same; the import says what differs.
    Approximated,
    /// No effect on the commands the drive sees (reporting, logging, the host's process
    /// model); reported and left out.
    Ignored,
    /// Changes what the test does and the plan cannot express it: the import fails (exit
    /// 2), unless the value is one of `neutral` (off or fio's default).
    Refused,
}

/// One fio option.
#[derive(Clone, Copy, Debug)]
pub struct FioOption {
    /// fio's name.
    pub name: &'static str,
    /// Other names fio accepts for it.
    pub aliases: &'static [&'static str],
    /// How it carries over.
    pub support: Support,
    /// What nvplan calls it, in the words of a message (`io_size (in LBAs or with a unit:
    /// 4KiB)`); empty when nvplan has no parameter for it.
    pub nvplan: &'static str,
    /// Why, or what differs, in one sentence.
    pub note: &'static str,
    /// For refused options: values that mean "off" (compared without case).
    pub neutral: &'static [&'static str],
}

use Support::{Approximated as A, Exact as E, Ignored as I, Refused as R};

const fn o(name: &'static str, support: Support, nvplan: &'static str, note: &'static str) -> FioOption {
    FioOption { name, aliases: &[], support, nvplan, note, neutral: &[] }
}

const fn oa(name: &'static str, aliases: &'static [&'static str], support: Support, nvplan: &'static str, note: &'static str) -> FioOption {
    FioOption { name, aliases, support, nvplan, note, neutral: &[] }
}

/// A refused option that is fine when off.
const fn off(name: &'static str, neutral: &'static [&'static str], note: &'static str) -> FioOption {
    FioOption { name, aliases: &[], support: R, nvplan: "", note, neutral }
}

const NO: &[&str] = &["0", "false", "no", "off"];
const LOG: &str = "fio's logs and statistics; every nvplan report has io_per_second.csv, latency percentiles and histograms";
const FILES: &str = "file-system housekeeping; nvplan writes to a region of a namespace, not to a file";
const ENGINE: &str = "tunes how the ioengine submits I/O; nvplan's driver submits from user space and polls";
const PROCESS: &str = "how fio runs its jobs on the host; every nvplan worker is a thread pinned to a core";
const VERIFY: &str = "nvplan checks every LBA it reads against the LBA number, write serial and CRC each written LBA carries";
const ZONES: &str = "zoned-device and strided-zone modes have no equivalent in nvplan's workers";

/// The table, fio's option order by topic.
pub static OPTIONS: &[FioOption] = &[
    // Job description and structure.
    o("name", E, "name", "the worker's name (clones get .0, .1, ...)"),
    o("description", E, "description", "the plan's description"),
    oa("numjobs", &[], E, "one ioworker per clone", "each clone is its own worker with its own queue pair"),
    oa("stonewall", &["wait_for_previous"], E, "a new phase (phases run one after another)", "the job starts a phase"),
    o("wait_for", A, "a later phase", "the job starts in the phase after its waitee's; it then also waits for the waitee's phase companions"),
    o("new_group", I, "", "reporting groups; every worker and phase is reported"),
    o("group_reporting", I, "", "reporting groups; the report has every worker and the phase"),
    o("loops", E, "lba_count (the amount times the loops)", "the amount of I/O is multiplied"),
    oa("exitall", &[], R, "", "ends every job when the first one ends; nvplan workers end on their own"),
    o("exit_what", I, "", "only with exitall"),
    o("exitall_on_error", I, "", "a worker stops on its own errors (exit_on_error)"),
    // I/O type.
    oa(
        "rw",
        &["readwrite"],
        E,
        "read_percentage, op_percentage and lba_random (reads and the rest writes; trims in op_percentage; lba_random true or false)",
        "`:N` on sequential I/O is lba_step (holes, or backwards when negative); trimwrite and random :N are refused",
    ),
    o("rw_sequencer", E, "", "only matters with rw=...:N on random I/O, which is refused"),
    o("rwmixread", E, "read_percentage", "default 50"),
    o("rwmixwrite", E, "read_percentage (100 minus the writes)", "the later of rwmixread and rwmixwrite wins, as in fio"),
    o("rwmixcycle", I, "", "deprecated in fio"),
    o("percentage_random", E, "lba_random (a percentage)", "default 100 for random rw"),
    o("percentage_sequential", I, "", "deprecated in fio"),
    o("direct", A, "", "nvplan's I/O always reaches the device; direct=0 went through the page cache"),
    o("buffered", A, "", "nvplan's I/O always reaches the device; buffered=1 went through the page cache"),
    off("atomic", NO, "atomic writes (RWF_ATOMIC) have no equivalent"),
    o("sync", A, "io_flags: 0x4000 (FUA)", "O_SYNC/O_DSYNC writes reach the media: FUA on every I/O of the worker"),
    o("invalidate", I, "", "page-cache invalidation; nvplan has no page cache"),
    off("write_hint", &["none", "0"], "write lifetime hints have no equivalent"),
    // Block sizes and alignment.
    oa("bs", &["blocksize"], E, "io_size (in LBAs or with a unit: 4KiB)", "fio's default is 4k"),
    oa(
        "bsrange",
        &["blocksize_range"],
        E,
        "io_size as a list of sizes ([4KiB, 8KiB, 16KiB])",
        "every multiple of the smallest size, weighted as fio picks them",
    ),
    o("bssplit", E, "io_size as {size: weight} ({4KiB: 50, 64KiB: 50})", "per-direction splits must agree for the directions the job uses"),
    oa("ba", &["blockalign"], E, "lba_align (in LBAs or with a unit: 4KiB)", "fio's default is the smallest block size"),
    off("bs_unaligned", NO, "sizes that are not multiples of the smallest size may not be whole LBAs"),
    off("bs_is_seq_rand", NO, "sizes chosen by sequential/random instead of read/write have no equivalent"),
    // Amount and region.
    o("size", E, "region_start, region_end and lba_count (the region, and the amount of I/O)", "a percentage is of the namespace"),
    oa("io_size", &["io_limit"], E, "lba_count (bytes with a unit: 1GiB)", "the amount of I/O, apart from the region"),
    o("filesize", E, "region_end - region_start", "the file's region"),
    oa("offset", &["fileoffset"], E, "region_start", "a percentage is of the namespace, aligned up to the smallest block size"),
    o("offset_align", E, "region_start", "alignment of a percentage offset"),
    o("offset_increment", E, "region_start of each clone", "clone k starts at offset + k x increment"),
    o("number_ios", E, "io_count", "whichever of io_count and lba_count comes first ends the worker"),
    oa("fill_device", &["fill_fs"], A, "one sequential pass: lba_random: false with region_end", "fills the region instead of waiting for ENOSPC"),
    off("file_append", NO, "appending after the end of a file has no equivalent"),
    off("num_range", &["1"], "trims of several ranges per command have no equivalent"),
    // Time.
    oa("runtime", &["timeout"], E, "time", "without time_based it caps the run, as time does next to lba_count"),
    o("time_based", E, "time (a worker with a time runs that long)", "needs runtime"),
    o("startdelay", E, "start_time", "a range is one value per clone in fio; the plan takes its middle"),
    o("ramp_time", A, "time", "the ramp runs, but nvplan measures it too"),
    off("ramp_size", NO, "a ramp by amount has no equivalent"),
    // Depth and submission.
    o("iodepth", E, "qdepth", "fio's default is 1 (nvplan's is 63: the import always writes it)"),
    oa("iodepth_batch", &["iodepth_batch_submit"], I, "", ENGINE),
    oa("iodepth_batch_complete_min", &["iodepth_batch_complete"], I, "", ENGINE),
    o("iodepth_batch_complete_max", I, "", ENGINE),
    o("iodepth_low", I, "", ENGINE),
    o("io_submit_mode", I, "", ENGINE),
    o("serialize_overlap", I, "", "nvplan always serialises I/Os to the same LBAs (LBA locks)"),
    o(
        "ioengine",
        A,
        "the target (--target sim, or vfio:<PCI address>)",
        "nvplan drives the controller from user space; synchronous engines keep one I/O in flight",
    ),
    o("filename", E, "nsid, and the target", "/dev/nvmeXnY and /dev/ngXnY name namespace Y; other files become regions of namespace 1"),
    o("directory", I, "", FILES),
    o("filename_format", I, "", FILES),
    o("unique_filename", I, "", FILES),
    o("lockfile", I, "", FILES),
    off("opendir", &[], "I/O to every file of a directory has no equivalent"),
    o("filetype", I, "", FILES),
    FioOption {
        name: "nrfiles",
        aliases: &["nr_files"],
        support: R,
        nvplan: "",
        note: "several files per job have no equivalent (give each file its own job)",
        neutral: &["1"],
    },
    o("openfiles", I, "", FILES),
    o("file_service_type", I, "", "only with several files per job"),
    o("fallocate", I, "", FILES),
    o("fadvise_hint", I, "", FILES),
    o("create_serialize", I, "", FILES),
    o("create_fsync", I, "", FILES),
    o("create_on_open", I, "", FILES),
    off("create_only", NO, "a job that only lays out files does no I/O a plan could carry"),
    o("allow_file_create", I, "", FILES),
    o("allow_mounted_write", I, "", FILES),
    o("pre_read", I, "", FILES),
    o("unlink", I, "", FILES),
    o("unlink_each_loop", I, "", FILES),
    o("overwrite", I, "", FILES),
    o("ioscheduler", I, "", "the kernel's I/O scheduler; nvplan's I/O bypasses the kernel"),
    // Random offsets.
    oa("randrepeat", &["allrandrepeat"], E, "seed (the same seed repeats the same I/O; --seed N varies it)", "nvplan runs are always repeatable"),
    o("randseed", E, "seed", "the I/O stream is nvplan's own, repeatable for the seed"),
    o("norandommap", E, "", "nvplan picks every random offset independently, always"),
    o("softrandommap", I, "", "only about the random map, which nvplan never keeps"),
    o("random_generator", A, "", "lfsr touches every block once per pass; nvplan picks offsets independently"),
    o(
        "random_distribution",
        E,
        "distribution (100 weights, one per 1 % of the namespace)",
        "zoned maps exactly; zipf, pareto and normal by their mass per 1 %",
    ),
    off("sprandom", NO, "sprandom's preconditioning has no equivalent"),
    o("spr_num_regions", I, "", "only with sprandom"),
    o("spr_op", I, "", "only with sprandom"),
    o("spr_cs", I, "", "only with sprandom"),
    // Rates.
    o("rate_iops", E, "iops", "per direction in fio; one rate for the worker in nvplan"),
    o("rate", A, "iops (bytes per second divided by the I/O size)", "exact for one size"),
    o("rate_iops_min", A, "expect: {iops_min: N}", "fio checks it every rate_cycle and stops; nvplan checks the run's average"),
    oa("rate_min", &["ratemin"], A, "expect: {mbps_min: N}", "fio checks it every rate_cycle and stops; nvplan checks the run's average"),
    off("rate_process", &["linear"], "nvplan paces I/O evenly; Poisson arrivals have no equivalent"),
    oa("rate_cycle", &["ratecycle"], I, "", "the window of rate_min checks"),
    o("rate_ignore_thinktime", I, "", "only with thinktime"),
    off("thinktime", NO, "a pause after I/Os has no equivalent (iops paces instead)"),
    o("thinktime_spin", I, "", "only with thinktime"),
    o("thinkcycles", I, "", "only with thinktime"),
    o("thinktime_blocks", I, "", "only with thinktime"),
    o("thinktime_blocks_type", I, "", "only with thinktime"),
    o("thinktime_iotime", I, "", "only with thinktime"),
    off("flow", NO, "flow control between jobs has no equivalent"),
    o("flow_id", I, "", "only with flow"),
    o("flow_watermark", I, "", "only with flow"),
    o("flow_sleep", I, "", "only with flow"),
    // Latency.
    o("max_latency", A, "slow_latency", "an I/O slower than this is an error (-8) in the worker"),
    o("latency_target", A, "a sweep of qdepth with expect: {latency_us: ...}", "the deepest passing run is fio's answer, to a power of two"),
    o("latency_window", A, "time of each sweep run", "with latency_target"),
    o("latency_percentile", A, "the percentile in expect: {latency_us: ...}", "with latency_target"),
    o("latency_run", I, "", "with latency_target"),
    // Data.
    o("buffer_pattern", E, "ptype and pvalue (ptype: 32, pvalue: 0xdeadbeef for a 4-byte pattern)", "patterns of 1, 2 or 4 bytes; longer ones are refused"),
    o("zero_buffers", E, "ptype: 0, pvalue: 0", "all zeroes"),
    o("refill_buffers", I, "", "nvplan's data comes from a pool of blocks filled once"),
    o("scramble_buffers", I, "", "nvplan's data comes from a pool of blocks filled once"),
    o("buffer_compress_percentage", A, "ptype: 0xBEEF with pvalue the random share", "random bytes then zeroes in every LBA"),
    o("buffer_compress_chunk", I, "", "nvplan's random and zero parts are per LBA"),
    off("dedupe_percentage", NO, "duplicate blocks on purpose have no equivalent"),
    o("dedupe_global", I, "", "only with dedupe_percentage"),
    o("dedupe_mode", I, "", "only with dedupe_percentage"),
    o("dedupe_working_set_percentage", I, "", "only with dedupe_percentage"),
    oa("mem", &["iomem"], I, "", "nvplan's buffers are its own DMA memory"),
    oa("iomem_align", &["mem_align"], I, "", "nvplan's buffers are its own DMA memory"),
    o("hugepage-size", I, "", "nvplan's buffers are its own DMA memory"),
    o("lockmem", I, "", PROCESS),
    // Verification.
    o("verify", E, "", "nvplan verifies every read by default (verify_disable: true turns it off); import-fio adds a read-back phase after a job that writes"),
    o("do_verify", E, "", "do_verify=0 leaves out the read-back phase"),
    o("verify_pattern", E, "ptype and pvalue", "patterns of 1, 2 or 4 bytes; longer ones and %o are refused"),
    off("verify_only", NO, "nvplan verifies only data written in the same run"),
    o("verify_interval", I, "", VERIFY),
    o("verify_offset", I, "", VERIFY),
    o("verify_fatal", I, "", VERIFY),
    o("verify_dump", I, "", VERIFY),
    o("verify_async", I, "", VERIFY),
    o("verify_async_cpus", I, "", VERIFY),
    o("verify_backlog", I, "", VERIFY),
    o("verify_backlog_batch", I, "", VERIFY),
    o("verify_pattern_interval", I, "", VERIFY),
    o("verify_state_load", I, "", VERIFY),
    o("verify_state_save", I, "", VERIFY),
    o("verify_write_sequence", I, "", VERIFY),
    o("verify_header_seed", I, "", VERIFY),
    o("verifysort", I, "", "deprecated in fio"),
    o("verifysort_nr", I, "", "deprecated in fio"),
    o("experimental_verify", I, "", VERIFY),
    off("trim_percentage", NO, "trims of verified blocks have no equivalent"),
    o("trim_verify_zero", I, "", "only with trim_percentage"),
    o("trim_backlog", I, "", "only with trim_percentage"),
    o("trim_backlog_batch", I, "", "only with trim_percentage"),
    // Flushes.
    o("fsync", A, "op_percentage with flush", "one flush per N writes on average, queued with the I/O instead of waited for"),
    o("fdatasync", A, "op_percentage with flush", "one flush per N writes on average, queued with the I/O instead of waited for"),
    off("write_barrier", NO, "barrier writes have no equivalent"),
    off("sync_file_range", &[], "sync_file_range has no equivalent"),
    o("end_fsync", E, "an admin flush event in the next phase", "after the job's phase"),
    o("fsync_on_close", E, "an admin flush event in the next phase", "after the job's phase"),
    o("end_syncfs", I, "", FILES),
    // CPUs and the host.
    o("cpumask", A, "cpu_id (one core per worker)", "a mask of several CPUs pins each clone to one of them"),
    o("cpus_allowed", A, "cpu_id (one core per worker)", "several CPUs: each clone is pinned to one of them"),
    o("cpus_allowed_policy", E, "cpu_id", "split gives clone k the k-th CPU, as fio does"),
    o("numa_cpu_nodes", I, "", PROCESS),
    o("numa_mem_policy", I, "", PROCESS),
    o("thread", I, "", PROCESS),
    o("nice", I, "", PROCESS),
    o("prio", I, "", "kernel I/O priorities; nvplan's I/O bypasses the kernel"),
    o("prioclass", I, "", "kernel I/O priorities; nvplan's I/O bypasses the kernel"),
    o("priohint", I, "", "kernel I/O priorities; nvplan's I/O bypasses the kernel"),
    o("uid", I, "", PROCESS),
    o("gid", I, "", PROCESS),
    o("cgroup", I, "", PROCESS),
    o("cgroup_nodelete", I, "", PROCESS),
    o("cgroup_weight", I, "", PROCESS),
    o("comm", I, "", PROCESS),
    o("clocksource", I, "", PROCESS),
    o("gtod_cpu", I, "", PROCESS),
    o("job_start_clock_id", I, "", PROCESS),
    off("gpu_dev_id", &[], "GPU memory has no equivalent"),
    // Errors.
    o("continue_on_error", A, "exit_on_error: false", "any error class other than none keeps the worker going on every error"),
    o("ignore_error", A, "exit_on_error: false", "the worker goes on after every error, not only the listed ones"),
    o("error_dump", I, "", "every failure is in the worker's error_message and command log"),
    // Reporting and logs.
    o("percentile_list", E, "output_percentile_latency", "percentiles of every I/O, reported per opcode class"),
    o("clat_percentiles", I, "", LOG),
    o("lat_percentiles", I, "", LOG),
    o("slat_percentiles", I, "", LOG),
    o("significant_figures", I, "", LOG),
    o("stats", I, "", LOG),
    o("disk_util", I, "", LOG),
    o("gtod_reduce", I, "", LOG),
    o("disable_lat", I, "", LOG),
    o("disable_clat", I, "", LOG),
    o("disable_slat", I, "", LOG),
    oa("disable_bw_measurement", &["disable_bw"], I, "", LOG),
    o("unified_rw_reporting", I, "", LOG),
    o("per_job_logs", I, "", LOG),
    o("write_bw_log", I, "", LOG),
    o("write_lat_log", I, "", LOG),
    o("write_iops_log", I, "", LOG),
    o("write_hist_log", I, "", LOG),
    o("log_entries", I, "", LOG),
    o("log_avg_msec", I, "", LOG),
    o("log_hist_msec", I, "", LOG),
    o("log_hist_coarseness", I, "", LOG),
    oa("log_window_value", &["log_max_value"], I, "", LOG),
    o("log_offset", I, "", LOG),
    o("log_prio", I, "", LOG),
    o("log_issue_time", I, "", LOG),
    o("log_compression", I, "", LOG),
    o("log_compression_cpus", I, "", LOG),
    o("log_store_compressed", I, "", LOG),
    oa("log_alternate_epoch", &["log_unix_epoch"], I, "", LOG),
    o("log_alternate_epoch_clock_id", I, "", LOG),
    o("block_error_percentiles", I, "", LOG),
    o("bwavgtime", I, "", LOG),
    o("iopsavgtime", I, "", LOG),
    o("write_iolog", I, "", "every report can hold a command log (output_cmdlog_list)"),
    o("kb_base", E, "", "a plan writes its units out: KiB and MiB are 1024, KB and MB 1000"),
    o("unit_base", I, "", LOG),
    // Replay and external commands.
    off("read_iolog", &[], "replaying a trace has no equivalent (io_sequence holds exact I/Os, written out)"),
    o("read_iolog_chunked", I, "", "only with read_iolog"),
    o("replay_no_stall", I, "", "only with read_iolog"),
    o("replay_redirect", I, "", "only with read_iolog"),
    o("replay_scale", I, "", "only with read_iolog"),
    o("replay_align", I, "", "only with read_iolog"),
    o("replay_time_scale", I, "", "only with read_iolog"),
    o("replay_skip", I, "", "only with read_iolog"),
    off("merge_blktrace_file", &[], "merging traces has no equivalent"),
    o("merge_blktrace_scalars", I, "", "only with merge_blktrace_file"),
    o("merge_blktrace_iters", I, "", "only with merge_blktrace_file"),
    off("exec_prerun", &[], "nvplan runs no shell commands; do it before the run"),
    off("exec_postrun", &[], "nvplan runs no shell commands; do it after the run"),
    off("profile", &[], "fio's built-in profiles have no equivalent"),
    // Steady state.
    oa("steadystate", &["ss"], R, "", "stopping when steady has no equivalent (nvplan runs for its time)"),
    oa("steadystate_duration", &["ss_dur"], I, "", "only with steadystate"),
    oa("steadystate_ramp_time", &["ss_ramp"], I, "", "only with steadystate"),
    oa("steadystate_check_interval", &["ss_interval"], I, "", "only with steadystate"),
    // Zones and placement.
    off("zonemode", &["none"], ZONES),
    off("zonesize", NO, ZONES),
    off("zonecapacity", NO, ZONES),
    off("zonerange", NO, ZONES),
    off("zoneskip", NO, ZONES),
    off("read_beyond_wp", NO, ZONES),
    off("max_open_zones", NO, ZONES),
    off("job_max_open_zones", NO, ZONES),
    off("ignore_zone_limits", NO, ZONES),
    off("zone_reset_threshold", NO, ZONES),
    off("zone_reset_frequency", NO, ZONES),
    off("recover_zbd_write_error", NO, ZONES),
    off("write_zone_remainder", NO, ZONES),
    off("fdp", NO, "flexible data placement has no equivalent"),
    FioOption { name: "dataplacement", aliases: &["data_placement"], support: R, nvplan: "", note: "data placement has no equivalent", neutral: &["none"] },
    FioOption { name: "plids", aliases: &["fdp_pli"], support: R, nvplan: "", note: "placement identifiers have no equivalent", neutral: &[] },
    FioOption { name: "plid_select", aliases: &["fdp_pli_select"], support: I, nvplan: "", note: "only with plids", neutral: &[] },
    o("dp_scheme", I, "", "only with dataplacement"),
    // Options of the ioengines the import accepts.
    o("hipri", I, "", ENGINE),
    o("hipri_percentage", I, "", ENGINE),
    o("fixedbufs", I, "", ENGINE),
    o("registerfiles", I, "", ENGINE),
    o("sqthread_poll", I, "", ENGINE),
    o("sqthread_poll_cpu", I, "", ENGINE),
    o("nonvectored", I, "", ENGINE),
    o("uncached", I, "", ENGINE),
    o("nowait", I, "", ENGINE),
    o("force_async", I, "", ENGINE),
    o("cmd_type", I, "", "io_uring_cmd's command set; nvplan sends NVMe commands"),
    o("userspace_reap", I, "", ENGINE),
    o("libaio_vectored", I, "", ENGINE),
    o("readfua", A, "io_flags: 0x4000 (FUA)", "FUA on every I/O of the worker, reads and writes"),
    o("writefua", A, "io_flags: 0x4000 (FUA)", "FUA on every I/O of the worker, reads and writes"),
    o("write_mode", E, "op_percentage (write_zeroes, write_uncorrectable, verify)", "writes become that command"),
    off("verify_mode", &["read"], "verification by Compare commands has no equivalent"),
    off("deac", NO, "Write Zeroes with deallocate has no equivalent"),
    off("md_per_io_size", NO, "metadata and protection information are not modelled"),
    off("pi_act", NO, "protection information is not modelled"),
    off("pi_chk", &[], "protection information is not modelled"),
    off("apptag", &[], "protection information is not modelled"),
    off("apptag_mask", &[], "protection information is not modelled"),
    o("xnvme_be", I, "", ENGINE),
    o("xnvme_mem", I, "", ENGINE),
    o("xnvme_async", I, "", ENGINE),
    o("xnvme_sync", I, "", ENGINE),
    o("xnvme_admin", I, "", ENGINE),
    o("xnvme_iovec", I, "", ENGINE),
    o("xnvme_dev_subnqn", I, "", ENGINE),
    o("xnvme_dev_nsid", E, "nsid", "the namespace"),
    o("libblkio_driver", I, "", ENGINE),
    o("libblkio_path", E, "nsid, and the target", "the file or device, when filename is not given"),
    o("libblkio_pre_connect_props", I, "", ENGINE),
    o("libblkio_num_entries", I, "", ENGINE),
    o("libblkio_queue_size", I, "", ENGINE),
    o("libblkio_pre_start_props", I, "", ENGINE),
    o("libblkio_vectored", I, "", ENGINE),
    o("libblkio_write_zeroes_on_trim", I, "", ENGINE),
    o("libblkio_wait_mode", I, "", ENGINE),
    o("libblkio_force_enable_completion_eventfd", I, "", ENGINE),
];

/// The option fio knows by `name` (or one of its aliases).
pub fn lookup(name: &str) -> Option<&'static FioOption> {
    OPTIONS.iter().find(|o| o.name == name || o.aliases.contains(&name))
}

/// For plan validation: what to say about an unknown ioworker key that is a fio option.
pub fn plan_hint(key: &str) -> Option<String> {
    let o = lookup(key)?;
    if o.nvplan.is_empty() {
        return Some(format!("fio's {key} has no ioworker parameter: {}", o.note));
    }
    // `io_size (in LBAs ...)` reads as "fio's bs is io_size here (in LBAs ...)".
    Some(match o.nvplan.split_once(" (") {
        Some((head, why)) => format!("fio's {key} is {head} here ({why}"),
        None => format!("fio's {key} is {} here", o.nvplan),
    })
}

/// ioengines whose I/O a plan can carry, and whether they keep more than one I/O in
/// flight.
pub(crate) fn engine(name: &str) -> Option<bool> {
    let n = name.trim();
    let n = n.strip_prefix("external:").map_or(n, |p| p.rsplit('/').next().unwrap_or(p));
    match n {
        "libaio" | "io_uring" | "io_uring_cmd" | "posixaio" | "windowsaio" | "solarisaio" | "xnvme" | "spdk" | "spdk_fio_plugin" | "libblkio" | "null"
        | "cpp_null" => Some(true),
        "sync" | "psync" | "vsync" | "pvsync" | "pvsync2" | "mmap" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut all: Vec<&str> = OPTIONS.iter().flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied())).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a name is in the table twice");
    }

    #[test]
    fn plan_hints_name_the_nvplan_parameter() {
        assert_eq!(plan_hint("bs").as_deref(), Some("fio's bs is io_size here (in LBAs or with a unit: 4KiB)"));
        assert_eq!(plan_hint("blocksize"), plan_hint("bs").map(|h| h.replace("fio's bs", "fio's blocksize")));
        assert!(plan_hint("thinktime").unwrap().contains("no ioworker parameter"));
        assert_eq!(plan_hint("qdepth"), None);
    }

    #[test]
    fn docs_fio_md_lists_every_option_of_the_table() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fio.md"));
        let missing: Vec<&str> =
            OPTIONS.iter().flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied())).filter(|n| !doc.contains(&format!("`{n}`"))).collect();
        assert!(missing.is_empty(), "docs/fio.md does not list {missing:?}");
    }

    #[test]
    fn every_refused_or_approximated_option_says_why() {
        for o in OPTIONS {
            if matches!(o.support, Support::Refused | Support::Approximated | Support::Ignored) {
                assert!(!o.note.is_empty(), "{} has no note", o.name);
            }
        }
    }
}
