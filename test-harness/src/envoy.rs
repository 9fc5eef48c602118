//! [`Envoy`]: a real Envoy process running the built filter, for one test or `harness up`.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Client, HttpVersion};
use crate::render::{Downstream, RenderOptions, Template, LISTENER};
use crate::{embed, locate, Delivery, Error, Stats};

/// How often readiness is polled while Envoy starts (a start takes about a second).
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How many log lines an error or a failing test shows.
const LOG_TAIL_LINES: usize = 60;

/// Which policy the filter runs.
#[derive(Debug, Clone, Default)]
pub enum Policy {
    /// The one embedded in `envoy/envoy.yaml`, i.e. exactly what ships.
    #[default]
    Embedded,
    /// A policy YAML file, bundled with its OpenAPI document.
    File(PathBuf),
    /// An already bundled policy, e.g. a bundled file edited by a test.
    Bundle(Value),
}

/// How to start Envoy. Defaults: embedded policy, ephemeral loopback ports, one worker.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub policy: Policy,
    /// Listener address; port 0 picks a free port (no race between choosing and binding).
    pub listen: SocketAddr,
    /// Admin address; port 0 as for `listen`.
    pub admin: SocketAddr,
    /// Worker threads; each runs its own Wasm VM.
    pub concurrency: u16,
    /// `false` starts the baseline: the same config without apiguard.
    pub with_filter: bool,
    /// How long to wait for `/ready` before giving up.
    pub ready_timeout: Duration,
    /// A JWKS endpoint for `remote_jwks`, reachable as the `jwks` cluster.
    pub jwks: Option<SocketAddr>,
    /// `Some` adds the security event sender, posting to a collector.
    pub delivery: Option<Delivery>,
    /// Turns on HTTP/1.1 trailers, which the shipped config leaves off (Envoy then drops
    /// them): on the listener and towards the upstream.
    pub http1_trailers: bool,
    /// The connection manager's downstream settings; the default is what ships.
    pub downstream: Downstream,
    /// Where Envoy's files go (the rendered config, `envoy.log`, `access.log`), kept after
    /// Envoy stops (`harness up --logs`). `None`: a temporary directory, removed on drop
    /// unless a test failed.
    pub files: Option<PathBuf>,
    /// The filter to load; `None`: [`locate::filter_wasm`]. Set for a test build of the
    /// filter (the failure-policy measurement's `fault-injection` build).
    pub wasm: Option<PathBuf>,
    /// `Some`: apiguard's configuration comes by ECDS from this resource file (an
    /// [`crate::EcdsSource`]'s), which then decides the policy and the `.wasm`.
    pub ecds: Option<PathBuf>,
}

impl Default for EnvoyOptions {
    fn default() -> EnvoyOptions {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        EnvoyOptions {
            policy: Policy::Embedded,
            listen: loopback,
            admin: loopback,
            concurrency: 1,
            with_filter: true,
            // A start takes a second or two on an idle machine, most of it V8 compiling the
            // ~5.6 MB filter; with the full e2e suite starting Envoys in parallel on two
            // busy cores that reached 20 s, so the bound is generous.
            ready_timeout: Duration::from_secs(90),
            jwks: None,
            delivery: None,
            http1_trailers: false,
            downstream: Downstream::default(),
            files: None,
            wasm: None,
            ecds: None,
        }
    }
}

/// A running Envoy; killed and reaped on drop, also when a test panics, in which case its log
/// tail is printed (libtest shows it with the failure).
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    scratch: ScratchDir,
    listener: SocketAddr,
    admin: SocketAddr,
}

impl Envoy {
    /// Renders the config, starts Envoy in front of `upstream` and waits until it is ready.
    /// If Envoy exits first (a refused config), the error carries its exit status and log.
    pub fn start(options: &EnvoyOptions, upstream: SocketAddr) -> Result<Envoy, Error> {
        let wasm = match &options.wasm {
            Some(path) => path.clone(),
            None => locate::filter_wasm()?,
        };
        let bundle = match &options.policy {
            Policy::Embedded => None,
            Policy::File(path) => Some(embed::bundle(path)?),
            Policy::Bundle(bundle) => Some(bundle.clone()),
        };
        let template = Template::load(&locate::envoy_yaml())?;
        let mut config = template.render(&RenderOptions {
            listen: options.listen,
            admin: options.admin,
            upstream,
            wasm: &wasm,
            policy: bundle.as_ref(),
            with_filter: options.with_filter,
            jwks: options.jwks,
            downstream: options.downstream,
        })?;
        if let Some(delivery) = &options.delivery {
            delivery.merge_into(&mut config, &wasm)?;
        }
        if options.http1_trailers {
            template.enable_http1_trailers(&mut config)?;
        }
        if let Some(resource) = &options.ecds {
            template.deliver_by_ecds(&mut config, resource)?;
        }
        let scratch = match &options.files {
            Some(dir) => ScratchDir::kept_at(dir)?,
            None => ScratchDir::create()?,
        };
        let envoy = Envoy::launch_in(&config, options.concurrency, options.ready_timeout, scratch)?;
        if options.ecds.is_some() {
            envoy.wait_first_ecds_update(options.ready_timeout)?;
        }
        Ok(envoy)
    }

    /// Starts Envoy on an already rendered config (e.g. [`Template::render`]'s output, edited
    /// by a benchmark) and waits until it is ready; the listener is read back from the admin.
    pub fn launch(
        config: &Value,
        concurrency: u16,
        ready_timeout: Duration,
    ) -> Result<Envoy, Error> {
        Envoy::launch_in(config, concurrency, ready_timeout, ScratchDir::create()?)
    }

    fn launch_in(
        config: &Value,
        concurrency: u16,
        ready_timeout: Duration,
        scratch: ScratchDir,
    ) -> Result<Envoy, Error> {
        let envoy_binary = locate::envoy_binary()?;
        let config_path = scratch.path().join("envoy.json");
        fs::write(&config_path, serde_json::to_vec_pretty(&config)?)
            .map_err(Error::io("writing the Envoy config"))?;
        // Envoy logs to stderr; the access log (StdoutAccessLog) is its stdout.
        let log = File::create(scratch.log()).map_err(Error::io("creating the Envoy log"))?;
        let access_log =
            File::create(scratch.access_log()).map_err(Error::io("creating the access log"))?;
        let child = Command::new(&envoy_binary)
            .arg("--config-path")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(scratch.admin_address())
            // Parallel tests each run an Envoy; a dynamic base id keeps their shared-memory
            // regions (for hot restart) apart.
            .arg("--use-dynamic-base-id")
            .args(["--concurrency", &concurrency.to_string()])
            // Envoy's own info lines (a hundred lines of extension lists at start) would push
            // the interesting part out of the tail; the filter logs under `wasm`.
            .args([
                "--log-level",
                "warning",
                "--component-log-level",
                "wasm:info",
            ])
            .stdin(Stdio::null())
            .stdout(access_log)
            .stderr(log)
            .spawn()
            .map_err(Error::io(format!("starting {}", envoy_binary.display())))?;

        // From here on, Drop stops the process whatever goes wrong.
        let unbound = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut envoy = Envoy {
            child,
            scratch,
            listener: unbound,
            admin: unbound,
        };
        envoy.admin = envoy.wait_ready(ready_timeout)?;
        envoy.listener = envoy.bound_listener()?;
        Ok(envoy)
    }

    /// Where API traffic goes.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client for the API listener.
    pub fn client(&self, version: HttpVersion) -> Result<Client, Error> {
        Client::new(self.listener, version)
    }

    /// A snapshot of `/stats/prometheus`.
    pub fn stats(&self) -> Result<Stats, Error> {
        Ok(Stats::parse(&self.admin_get("/stats/prometheus")?))
    }

    /// Envoy's whole log so far (with the filter's lines and its security events), then
    /// the access log.
    pub fn log(&self) -> String {
        let mut log = fs::read_to_string(self.scratch.log()).unwrap_or_default();
        log += &fs::read_to_string(self.scratch.access_log()).unwrap_or_default();
        log
    }

    /// The last lines of Envoy's log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&fs::read_to_string(self.scratch.log()).unwrap_or_default())
    }

    /// Envoy's log file (its stderr).
    pub fn log_path(&self) -> PathBuf {
        self.scratch.log()
    }

    /// The access log file (its stdout): one JSON line per request.
    pub fn access_log_path(&self) -> PathBuf {
        self.scratch.access_log()
    }

    /// Polls until `/ready` answers 200 and returns the admin address Envoy bound.
    fn wait_ready(&mut self, timeout: Duration) -> Result<SocketAddr, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(Error::io("checking on Envoy"))?
            {
                return Err(Error::EnvoyExited {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if let Some(admin) = self.scratch.read_admin_address() {
                let ready = Client::new(admin, HttpVersion::Http1)?.get("/ready");
                if ready.is_ok_and(|response| response.status.is_success()) {
                    return Ok(admin);
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::EnvoyNotReady {
                    timeout,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// One of Envoy's ECDS stats for the `apiguard` filter
    /// (`extension_config_discovery.http_filter.apiguard.<name>`: `update_success`,
    /// `config_fail`, `version_text`…), as printed; `None` while Envoy prints none.
    pub fn ecds_stat(&self, name: &str) -> Result<Option<String>, Error> {
        let stats = self.admin_get("/stats?filter=extension_config_discovery")?;
        let suffix = format!(".{}.{name}", crate::render::PLUGIN);
        Ok((stats.lines())
            .filter_map(|line| line.split_once(": "))
            .find(|(stat, _)| stat.ends_with(&suffix))
            .map(|(_, value)| value.trim().trim_matches('"').to_owned()))
    }

    /// Waits until Envoy has applied or refused the first ECDS resource. `/ready` does not
    /// wait for it (Envoy reads the file once it runs), and meanwhile the main thread, which
    /// also answers the admin API, may be busy compiling the module for seconds.
    fn wait_first_ecds_update(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let settled = |name| {
            self.ecds_stat(name)
                .ok()
                .flatten()
                .is_some_and(|n| n != "0")
        };
        while !settled("update_success") && !settled("update_rejected") {
            if Instant::now() >= deadline {
                return Err(Error::EnvoyNotReady {
                    timeout,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// The address the `ingress` listener actually bound, from the admin `/listeners`.
    fn bound_listener(&self) -> Result<SocketAddr, Error> {
        let endpoint = "/listeners?format=json";
        let listeners: Value = serde_json::from_str(&self.admin_get(endpoint)?)?;
        let bad_answer = |message: &str| Error::Admin {
            endpoint: endpoint.to_owned(),
            message: message.to_owned(),
        };
        let status = listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|status| status["name"] == LISTENER)
            .ok_or_else(|| bad_answer("no `ingress` listener"))?;
        let address = &status["local_address"]["socket_address"];
        let ip = address["address"].as_str().and_then(|ip| ip.parse().ok());
        let port = address["port_value"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok());
        match (ip, port) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(bad_answer("no socket address for `ingress`")),
        }
    }

    /// The body of an admin endpoint (`/memory`, `/stats?filter=…`), if it answers 2xx.
    pub fn admin_get(&self, endpoint: &str) -> Result<String, Error> {
        let response = Client::new(self.admin, HttpVersion::Http1)?.get(endpoint)?;
        if !response.status.is_success() {
            return Err(Error::Admin {
                endpoint: endpoint.to_owned(),
                message: format!("{}: {}", response.status, response.text()),
            });
        }
        Ok(response.text())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // Errors mean the process is already gone; there is nothing left to stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.scratch.keep();
            let tail = self.log_tail();
            eprintln!(
                "--- Envoy log tail (full log and config in {}) ---\n{}",
                self.scratch.path().display(),
                if tail.is_empty() { "(empty)" } else { &tail }
            );
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// A per-run directory for the rendered config, the logs and the admin address; removed on
/// drop unless [`ScratchDir::keep`] was called (a failed test keeps it for inspection) or
/// it is the directory the caller chose ([`EnvoyOptions::files`]).
/// A new, empty directory `apiguard-<kind>-<pid>-<n>` in the system's temporary directory,
/// unique within this process (parallel tests each get their own).
pub(crate) fn fresh_temp_dir(kind: &str) -> Result<PathBuf, Error> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "apiguard-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    // A stale directory from an earlier process with the same pid is ours to replace.
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path).map_err(Error::io(format!("creating {}", path.display())))?;
    Ok(path)
}

#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    fn create() -> Result<ScratchDir, Error> {
        let path = fresh_temp_dir("envoy")?;
        Ok(ScratchDir { path, keep: false })
    }

    /// `dir`, created if need be and never removed; files of an earlier run are replaced.
    fn kept_at(dir: &Path) -> Result<ScratchDir, Error> {
        fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        // An earlier run's address would be polled as if this Envoy had bound it.
        let _ = fs::remove_file(dir.join("admin.address"));
        Ok(ScratchDir {
            path: dir.to_path_buf(),
            keep: true,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn log(&self) -> PathBuf {
        self.path.join("envoy.log")
    }

    fn access_log(&self) -> PathBuf {
        self.path.join("access.log")
    }

    fn admin_address(&self) -> PathBuf {
        self.path.join("admin.address")
    }

    /// The address Envoy wrote once its admin listener was bound, if it has yet.
    fn read_admin_address(&self) -> Option<SocketAddr> {
        fs::read_to_string(self.admin_address())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
