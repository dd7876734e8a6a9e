//! The `command` switch: the lab's own commands for off, on and status (a relay board's
//! CLI, a script that talks to a PDU). Each runs through `sh -c` in a process group of its
//! own, with a timeout after which the whole group is killed; a command that fails, or does
//! not finish in time, is an error that quotes its exit status and the end of its stderr.
//!
//! Every command gets `NVPLAN_POWER_ACTION` (`off`, `on`, `status`) and, for a PCI
//! function, `NVPLAN_PCI_ADDRESS` in its environment, so one script can serve all three.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Options, PowerError, PowerSwitch, tail};

/// Default time a command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long output is awaited after a command ends (a process it left behind may hold
/// the pipes open).
const DRAIN: Duration = Duration::from_millis(500);

/// A `command` switch as written.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSpec {
    /// Cuts power.
    pub off: String,
    /// Restores power.
    pub on: String,
    /// Prints `on` or `off`.
    pub status: Option<String>,
    /// Longest a command may run.
    pub timeout: Duration,
    /// Longest the function may take to answer after power on.
    pub ready: Duration,
}

impl CommandSpec {
    pub(crate) fn from_options(o: &Options, ready: Duration) -> Result<CommandSpec, String> {
        if let Some(m) = o.main() {
            return Err(format!("command: `{m}` needs a key: write off=CMD,on=CMD"));
        }
        let need = |k: &str| {
            o.get(k)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("command: no {k}= command; write command:off=CMD,on=CMD[,status=CMD][,timeout=30s]"))
        };
        Ok(CommandSpec {
            off: need("off")?,
            on: need("on")?,
            status: o.get("status").filter(|v| !v.is_empty()).map(str::to_string),
            timeout: o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT),
            ready,
        })
    }
}

/// Runs the lab's commands.
#[derive(Debug)]
pub struct CommandSwitch {
    spec: CommandSpec,
    address: Option<String>,
}

/// What a finished command gave.
#[derive(Debug)]
struct Ran {
    stdout: String,
}

impl CommandSwitch {
    /// A switch running `spec`'s commands for the function at `address`.
    pub fn new(spec: CommandSpec, address: Option<String>) -> CommandSwitch {
        CommandSwitch { spec, address }
    }

    fn err(&self, m: String) -> PowerError {
        PowerError::new(self.describe(), m)
    }

    /// Runs `cmd` for `action`; an error unless it exits 0 within the timeout.
    fn run(&self, action: &str, cmd: &str) -> Result<Ran, PowerError> {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(cmd).env("NVPLAN_POWER_ACTION", action).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(a) = &self.address {
            c.env("NVPLAN_PCI_ADDRESS", a);
        }
        // Its own process group, so a timeout kills what it started too.
        c.process_group(0);
        let mut child = c.spawn().map_err(|e| self.err(format!("{action} command `{cmd}` cannot start: {e}")))?;
        let out = reader(child.stdout.take());
        let errs = reader(child.stderr.take());
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if start.elapsed() >= self.spec.timeout => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(self.err(format!("{action} command `{cmd}`: waiting for it failed: {e}"))),
            }
        };
        let Some(status) = status else {
            // SAFETY: kill(2) on the process group the child leads (its pid, as set by
            // process_group(0)); no memory is involved.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            let stderr = errs.recv_timeout(DRAIN).unwrap_or_default();
            return Err(self.err(format!(
                "{action} command `{cmd}` did not finish within {} ms (timeout=); killed it{}",
                self.spec.timeout.as_millis(),
                said(&stderr)
            )));
        };
        let stdout = out.recv_timeout(DRAIN).unwrap_or_default();
        let stderr = errs.recv_timeout(DRAIN).unwrap_or_default();
        if !status.success() {
            let how = match (status.code(), status.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(s)) => format!("signal {s}"),
                _ => "an unknown status".to_string(),
            };
            return Err(self.err(format!("{action} command `{cmd}` failed with {how}{}", said(&stderr))));
        }
        Ok(Ran { stdout })
    }
}

/// `: <end of stderr>`, or nothing.
fn said(stderr: &str) -> String {
    if stderr.trim().is_empty() { String::new() } else { format!("; its stderr ends: {}", tail(stderr, 400)) }
}

/// Reads a pipe to its end on a thread of its own; the text arrives on the channel.
fn reader(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut p) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
    }
    rx
}

impl PowerSwitch for CommandSwitch {
    fn describe(&self) -> String {
        "command switch".into()
    }

    fn off(&self) -> Result<(), PowerError> {
        self.run("off", &self.spec.off).map(drop)
    }

    fn on(&self) -> Result<(), PowerError> {
        self.run("on", &self.spec.on).map(drop)
    }

    /// The status command prints `on` or `off` (case does not matter; `1`/`0` too).
    fn is_on(&self) -> Result<Option<bool>, PowerError> {
        let Some(cmd) = &self.spec.status else { return Ok(None) };
        let r = self.run("status", cmd)?;
        let word = r.stdout.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        match word.as_str() {
            "on" | "1" => Ok(Some(true)),
            "off" | "0" => Ok(Some(false)),
            _ => Err(self.err(format!("status command `{cmd}` printed `{}`; it must print on or off", tail(&r.stdout, 80)))),
        }
    }

    fn ready_timeout(&self) -> Duration {
        self.spec.ready
    }
}
