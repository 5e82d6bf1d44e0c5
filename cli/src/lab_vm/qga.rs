//! A client of the QEMU guest agent (qemu-guest-agent in each VM-lab guest),
//! over the virtio-serial port QEMU exposes as a unix socket on the host.
//!
//! ```text
//! host                                   guest
//!  guest-sync {id}              ──►
//!                               ◄──  {"return": id}        (drops stale replies)
//!  guest-exec {path, arg, capture-output} ──►
//!                               ◄──  {"return": {"pid": P}}
//!  guest-exec-status {pid: P}   ──►  (repeated until exited)
//!                               ◄──  {"return": {"exited": true, "exitcode": N,
//!                                               "out-data": base64, "err-data": base64}}
//! ```
//!
//! The port carries one conversation at a time: a connection per call.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// What a command run in the guest did.
#[derive(Debug, Clone)]
pub struct Exec {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Conn {
    fn open(sock: &Path, timeout: Duration) -> Result<Conn> {
        let s = UnixStream::connect(sock)
            .with_context(|| format!("connect to the guest agent at {}", sock.display()))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let r = BufReader::new(s.try_clone()?);
        let mut c = Conn { w: s, r };
        // A reply left from an earlier, abandoned call may still be queued.
        let id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(1);
        c.send(&json!({"execute": "guest-sync", "arguments": {"id": id}}))?;
        loop {
            let v = c.recv()?;
            if v.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(c);
            }
        }
    }

    fn send(&mut self, v: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.w.write_all(&line).context("write to the guest agent")
    }

    fn recv(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .r
            .read_line(&mut line)
            .context("read from the guest agent (is the guest up?)")?;
        if n == 0 {
            bail!("the guest agent closed the connection");
        }
        serde_json::from_str(line.trim()).with_context(|| format!("guest agent sent {line:?}"))
    }

    fn call(&mut self, v: &Value) -> Result<Value> {
        self.send(v)?;
        let r = self.recv()?;
        if let Some(e) = r.get("error") {
            bail!("guest agent: {e}");
        }
        r.get("return")
            .cloned()
            .with_context(|| format!("guest agent answered {r}"))
    }
}

/// Run `sh -c script` in the guest as root and wait for it (at most `limit`).
pub fn sh(sock: &Path, script: &str, limit: Duration) -> Result<Exec> {
    let mut c = Conn::open(sock, Duration::from_secs(10))?;
    let r = c.call(&json!({
        "execute": "guest-exec",
        "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}
    }))?;
    let pid = r
        .get("pid")
        .and_then(Value::as_i64)
        .with_context(|| format!("guest-exec answered {r}"))?;
    let t0 = Instant::now();
    loop {
        let st = c.call(&json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}))?;
        if st.get("exited").and_then(Value::as_bool) == Some(true) {
            let text = |k: &str| -> Result<String> {
                let Some(b) = st.get(k).and_then(Value::as_str) else {
                    return Ok(String::new());
                };
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .with_context(|| format!("guest agent's {k} is not base64"))?;
                Ok(String::from_utf8_lossy(&raw).into_owned())
            };
            return Ok(Exec {
                code: st
                    .get("exitcode")
                    .and_then(Value::as_i64)
                    .or_else(|| st.get("signal").and_then(Value::as_i64).map(|s| 128 + s))
                    .unwrap_or(-1),
                stdout: text("out-data")?,
                stderr: text("err-data")?,
            });
        }
        if t0.elapsed() > limit {
            bail!("`{script}` did not finish in the guest within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ask the guest to power off (systemd's clean shutdown). No answer is sent.
pub fn powerdown(sock: &Path) -> Result<()> {
    let mut c = Conn::open(sock, Duration::from_secs(5))?;
    c.send(&json!({"execute": "guest-shutdown", "arguments": {"mode": "powerdown"}}))
}
