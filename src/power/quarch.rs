//! The `quarch` switch: a Quarch power module (Power Analysis Module, Programmable Power
//! Module, Torridon hot-plug module) over TCP. Quarch modules take SCPI-style text commands
//! ending in `\r\n` and answer with text followed by a `>` prompt: `OK`, or `FAIL` with a
//! reason, for commands; the value for queries (Quarch Torridon System User Manual,
//! "Serial Command Set"). Commands used:
//!
//! - `RUN:POWER DOWN` / `RUN:POWER UP`: run the module's power-down / power-up sequence;
//! - `RUN:POWER?`: `ON` or `OFF` (power modules), `PLUGGED` or `PULLED` (hot-plug modules).
//!
//! Two transports, as the modules offer them: on port 9760 (the default) every message in
//! either direction starts with its length as two bytes, least significant first (as
//! QuarchPy's TCP connection frames them); on port 23 (telnet, array controllers) the text
//! is sent as is and the module echoes the command line. A module behind an array
//! controller is addressed with `module=N`, appended to each command as `<N>`.
//!
//! After `RUN:POWER DOWN`/`UP` answers `OK`, the module is asked `RUN:POWER?` until it
//! reports the new state (its sequence may take a while), within the timeout.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{Options, PowerError, PowerSwitch, tail};

/// TCP port of a module's framed command interface.
pub const FRAMED_PORT: u16 = 9760;
/// Telnet port.
pub const TELNET_PORT: u16 = 23;
/// Default time one command may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest reply accepted.
const MAX_REPLY: usize = 64 << 10;

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A two-byte little-endian length before each message (port 9760).
    Framed,
    /// Plain text with the module's echo and `>` prompt (telnet).
    Text,
}

/// A `quarch` switch as written.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarchSpec {
    /// Host name or IP address of the module (or its array controller).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Port of the module on an array controller.
    pub module: Option<u32>,
    /// Message framing.
    pub framing: Framing,
    /// Longest one command (and the wait for the new state) may take.
    pub timeout: Duration,
    /// Longest the function may take to answer after power on.
    pub ready: Duration,
}

impl QuarchSpec {
    /// The module at `host:port` (port 23: telnet text, else the framed protocol).
    pub fn new(host: String, port: u16, module: Option<u32>, timeout: Duration, ready: Duration) -> QuarchSpec {
        let framing = if port == TELNET_PORT { Framing::Text } else { Framing::Framed };
        QuarchSpec { host, port, module, framing, timeout, ready }
    }

    pub(crate) fn from_options(o: &Options, ready: Duration) -> Result<QuarchSpec, String> {
        let main = o.main_or("host").ok_or("quarch: no module address; write quarch:HOST[:PORT] (e.g. quarch:192.168.1.50 or quarch:QTL1999-01-042.local)")?;
        let (host, port_in_main) = match main.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h.trim_matches(['[', ']']).to_string(), Some(p)),
            _ => (main.to_string(), None),
        };
        let port_text = o.get("port").or(port_in_main);
        let port = match port_text {
            Some(p) => p.parse::<u16>().map_err(|_| format!("quarch: port `{p}` is not a TCP port number"))?,
            None => FRAMED_PORT,
        };
        let module = o
            .get("module")
            .map(|m| m.trim_matches(['<', '>']).parse::<u32>().map_err(|_| format!("quarch: module=`{m}` is not a port number of the array controller")))
            .transpose()?;
        if host.is_empty() {
            return Err("quarch: empty host; write quarch:HOST[:PORT]".into());
        }
        Ok(QuarchSpec::new(host, port, module, o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT), ready))
    }
}

/// A Quarch module's power control.
#[derive(Debug)]
pub struct QuarchSwitch {
    spec: QuarchSpec,
}

impl QuarchSwitch {
    /// The module `spec` names (nothing is sent until the first operation).
    pub fn new(spec: QuarchSpec) -> QuarchSwitch {
        QuarchSwitch { spec }
    }

    fn err(&self, m: impl Into<String>) -> PowerError {
        PowerError::new(self.describe(), m)
    }

    /// `cmd`, addressed to the module.
    fn addressed(&self, cmd: &str) -> String {
        match self.spec.module {
            Some(m) => format!("{cmd} <{m}>"),
            None => cmd.to_string(),
        }
    }

    /// Sends one command on a fresh connection and returns the reply, prompt removed.
    pub fn send(&self, cmd: &str) -> Result<String, PowerError> {
        let cmd = self.addressed(cmd);
        let deadline = Instant::now() + self.spec.timeout;
        let addrs: Vec<_> =
            (self.spec.host.as_str(), self.spec.port).to_socket_addrs().map_err(|e| self.err(format!("cannot resolve {}: {e}", self.spec.host)))?.collect();
        let mut last = None;
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, self.spec.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut s = stream.ok_or_else(|| {
            self.err(format!(
                "cannot connect: {} (is the module on the network, and is port {} its command port?)",
                last.map_or("no address".to_string(), |e| e.to_string()),
                self.spec.port
            ))
        })?;
        let _ = s.set_nodelay(true);
        let io = |e: std::io::Error| {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                self.err(format!("`{cmd}`: no complete reply within {} ms (timeout=)", self.spec.timeout.as_millis()))
            } else {
                self.err(format!("`{cmd}`: {e}"))
            }
        };
        let mut conn = Conn { s: &mut s, deadline, buf: Vec::new() };
        match self.spec.framing {
            Framing::Framed => {
                let msg = format!("{cmd}\r\n");
                let len = u16::try_from(msg.len()).map_err(|_| self.err("command too long"))?;
                let mut out = len.to_le_bytes().to_vec();
                out.extend_from_slice(msg.as_bytes());
                conn.write(&out).map_err(io)?;
                let text = conn.read_framed_reply().map_err(io)?;
                Ok(reply_text(&text, None))
            }
            Framing::Text => {
                // A banner and prompt may greet the connection; wait for it briefly.
                conn.skip_greeting().map_err(io)?;
                conn.write(format!("{cmd}\r\n").as_bytes()).map_err(io)?;
                let text = conn.read_text_reply().map_err(io)?;
                Ok(reply_text(&text, Some(&cmd)))
            }
        }
    }

    /// Runs `RUN:POWER <what>`, then waits for `RUN:POWER?` to say `want`.
    fn power(&self, what: &str, want: bool) -> Result<(), PowerError> {
        let cmd = format!("RUN:POWER {what}");
        let r = self.send(&cmd)?;
        if !r.eq_ignore_ascii_case("OK") {
            return Err(self.err(if r.to_ascii_uppercase().starts_with("FAIL") {
                format!("`{}` was refused: {}", self.addressed(&cmd), tail(&r, 300))
            } else {
                format!("`{}` answered `{}`, not OK", self.addressed(&cmd), tail(&r, 300))
            }));
        }
        let start = Instant::now();
        loop {
            if self.is_on()? == Some(want) {
                return Ok(());
            }
            if start.elapsed() >= self.spec.timeout {
                return Err(self.err(format!(
                    "`{cmd}` answered OK, but RUN:POWER? did not report {} within {} ms",
                    if want { "ON" } else { "OFF" },
                    self.spec.timeout.as_millis()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The reply without the echoed command line and surrounding white space.
fn reply_text(text: &str, echo: Option<&str>) -> String {
    let mut t = text.trim();
    if let Some(e) = echo
        && let Some(rest) = t.strip_prefix(e)
    {
        t = rest.trim();
    }
    t.to_string()
}

struct Conn<'a> {
    s: &'a mut TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
}

impl Conn<'_> {
    fn left(&self) -> std::io::Result<Duration> {
        let d = self.deadline.saturating_duration_since(Instant::now());
        if d.is_zero() { Err(std::io::ErrorKind::TimedOut.into()) } else { Ok(d) }
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.set_write_timeout(Some(self.left()?))?;
        self.s.write_all(b)
    }

    /// Reads at least one byte more into the buffer.
    fn fill(&mut self) -> std::io::Result<()> {
        self.s.set_read_timeout(Some(self.left()?))?;
        let mut b = [0u8; 4096];
        let n = self.s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the module closed the connection before its prompt"));
        }
        if self.buf.len() + n > MAX_REPLY {
            return Err(std::io::Error::other("reply longer than 64 KiB"));
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(())
    }

    /// Frames of `[len lo, len hi, text...]` until the text ends with the `>` prompt.
    fn read_framed_reply(&mut self) -> std::io::Result<String> {
        let mut text = Vec::new();
        loop {
            while self.buf.len() < 2 {
                self.fill()?;
            }
            let len = u16::from_le_bytes([self.buf[0], self.buf[1]]) as usize;
            while self.buf.len() < 2 + len {
                self.fill()?;
            }
            text.extend_from_slice(&self.buf[2..2 + len]);
            self.buf.drain(..2 + len);
            if ends_with_prompt(&text) {
                text.pop();
                return Ok(String::from_utf8_lossy(&text).into_owned());
            }
        }
    }

    fn read_text_reply(&mut self) -> std::io::Result<String> {
        loop {
            if ends_with_prompt(&self.buf) {
                self.buf.pop();
                return Ok(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned());
            }
            self.fill()?;
        }
    }

    /// Reads a greeting that ends in a prompt, if one comes within 300 ms.
    fn skip_greeting(&mut self) -> std::io::Result<()> {
        let until = Instant::now() + Duration::from_millis(300);
        while !ends_with_prompt(&self.buf) {
            let d = until.saturating_duration_since(Instant::now()).min(self.left()?);
            if d.is_zero() {
                break;
            }
            self.s.set_read_timeout(Some(d))?;
            let mut b = [0u8; 4096];
            match self.s.read(&mut b) {
                Ok(0) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the module closed the connection")),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        Ok(())
    }
}

/// A reply is complete at the `>` prompt, at the start of the text or after a line break.
fn ends_with_prompt(b: &[u8]) -> bool {
    let t = b.trim_ascii_end();
    t.last() == Some(&b'>') && (t.len() == 1 || matches!(t[t.len() - 2], b'\n' | b'\r'))
}

impl PowerSwitch for QuarchSwitch {
    fn describe(&self) -> String {
        let m = self.spec.module.map(|m| format!(" module <{m}>")).unwrap_or_default();
        format!("quarch {}:{}{m}", self.spec.host, self.spec.port)
    }

    fn off(&self) -> Result<(), PowerError> {
        self.power("DOWN", false)
    }

    fn on(&self) -> Result<(), PowerError> {
        self.power("UP", true)
    }

    fn is_on(&self) -> Result<Option<bool>, PowerError> {
        let r = self.send("RUN:POWER?")?;
        match r.to_ascii_uppercase().as_str() {
            "ON" | "PLUGGED" => Ok(Some(true)),
            "OFF" | "PULLED" => Ok(Some(false)),
            u if u.starts_with("FAIL") => Err(self.err(format!("`{}` was refused: {}", self.addressed("RUN:POWER?"), tail(&r, 300)))),
            _ => Err(self.err(format!("`{}` answered `{}`; expected ON, OFF, PLUGGED or PULLED", self.addressed("RUN:POWER?"), tail(&r, 300)))),
        }
    }

    fn ready_timeout(&self) -> Duration {
        self.spec.ready
    }
}
