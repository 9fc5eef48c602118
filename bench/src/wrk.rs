//! Load generation with wrk, pinned to its own core. A Lua script sets the request and
//! prints wrk's summary as one JSON line, so nothing is scraped from its human output.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::BenchError;

/// One request, sent over and over.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Sample {
    pub requests: u64,
    pub duration_us: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Connect, read, write and timeout errors plus non-2xx/3xx answers (those only when
    /// the scenario expects a 2xx).
    pub errors: u64,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.requests as f64 * 1e6 / self.duration_us.max(1) as f64
    }
}

/// How wrk drives one run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: u32,
    pub duration: Duration,
    pub cpu: usize,
}

/// A request written as a wrk script in a scratch directory.
pub struct Script {
    path: PathBuf,
    target: String,
}

impl Script {
    /// `status`: the answer the scenario expects; when it is no 2xx, answers are not
    /// counted as errors by their status (the probe checked the status before the run).
    pub fn write(
        dir: &Path,
        name: &str,
        request: &Request,
        status: u16,
    ) -> Result<Script, BenchError> {
        let mut lua = format!("wrk.method = {}\n", lua_string(request.method));
        for (name, value) in &request.headers {
            let _ = writeln!(
                lua,
                "wrk.headers[{}] = {}",
                lua_string(name),
                lua_string(value)
            );
        }
        if let Some(body) = &request.body {
            let _ = writeln!(lua, "wrk.body = {}", lua_string(body));
        }
        let status_errors = if (200..300).contains(&status) {
            "e.status"
        } else {
            "0"
        };
        let _ = write!(
            lua,
            r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {{\"requests\":%d,\"duration_us\":%d,\"p50_us\":%f,\"p99_us\":%f,\"errors\":%d}}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + {status_errors} + e.timeout))
end
"#
        );
        let path = dir.join(format!("{name}.lua"));
        fs::write(&path, lua)
            .map_err(|e| BenchError::Tool(format!("writing {}: {e}", path.display())))?;
        Ok(Script {
            path,
            target: request.target.clone(),
        })
    }

    /// Runs wrk (one thread) against `listener` and returns its summary.
    pub fn run(&self, listener: SocketAddr, load: Load) -> Result<Sample, BenchError> {
        let output = Command::new("taskset")
            .args(["-c", &load.cpu.to_string(), "wrk", "-t1"])
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{}s", load.duration.as_secs().max(1)))
            .args(["--timeout", "10s", "-s"])
            .arg(&self.path)
            .arg(format!("http://{listener}{}", self.target))
            .output()
            .map_err(|e| {
                BenchError::Tool(format!(
                    "cannot run taskset/wrk (apt-get install -y wrk util-linux): {e}"
                ))
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("BENCH "))
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| {
                BenchError::Tool(format!(
                    "wrk printed no summary ({}): {stdout}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ))
            })
    }
}

/// A Lua string literal: every byte outside printable ASCII, and quotes and backslashes,
/// as a decimal escape.
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "\\{byte:03}");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::lua_string;

    #[test]
    fn lua_strings_escape_quotes_backslashes_and_control_bytes() {
        assert_eq!(lua_string(r#"a "b"\c"#), r#""a \034b\034\092c""#);
        assert_eq!(lua_string("x\ny"), r#""x\010y""#);
    }
}
