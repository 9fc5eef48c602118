//! The remote policy source's host side: fetches the bundle through the named Envoy
//! cluster on the root's tick and hands [`Poll`] what came back; what an answer comes to
//! is decided there ([`crate::gateway::remote`]).
//!
//! Each VM (one per worker, plus the main thread's) polls on its own: a root context is
//! per VM and a compiled policy cannot be shared between VMs, so N workers make N
//! requests per `cache_duration` (a 304 each, while the bundle is unchanged) and compile
//! a changed bundle N times, each on its own thread.
//!
//! Stats: `apiguard.policy.remote.fetched` (a new bundle loaded), `.not_modified` (304, or
//! the same bytes again), `.failed` (no answer, a status other than 200 and 304),
//! `.rejected_pin` (not the pinned sha256), `.rejected_compile` (not a bundle that
//! compiles). Each of the last three keeps the last good bundle serving, logs the cause
//! and emits `apiguard.policy_fetch_failed` under the serving configuration's event
//! settings (only logged while none serves).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};

use super::events::{self, Emitter};
use super::metrics::{counter, increment};
use super::{call_status, log};
use crate::events::{Event, Severity, POLICY_FETCH_FAILED};
use crate::gateway::remote::{Answer, Outcome, Poll, RemoteSource, MAX_BUNDLE_BYTES};
use crate::gateway::Gateway;

pub(super) struct Fetcher {
    source: RemoteSource,
    poll: Poll,
    /// The fetch in flight.
    pending: Option<u32>,
    fetched: Option<u32>,
    not_modified: Option<u32>,
    failed: Option<u32>,
    rejected_pin: Option<u32>,
    rejected_compile: Option<u32>,
}

impl Fetcher {
    /// Starts polling `source` (its `default_config` taken out by the caller); the first
    /// fetch goes on the next tick.
    pub(super) fn new(source: RemoteSource) -> Fetcher {
        let poll = Poll::new(&source);
        Fetcher {
            source,
            poll,
            pending: None,
            fetched: counter("apiguard.policy.remote.fetched"),
            not_modified: counter("apiguard.policy.remote.not_modified"),
            failed: counter("apiguard.policy.remote.failed"),
            rejected_pin: counter("apiguard.policy.remote.rejected_pin"),
            rejected_compile: counter("apiguard.policy.remote.rejected_compile"),
        }
    }

    /// The root's tick: starts a fetch when one is due. A call that cannot start is a
    /// failed fetch (`serving`: see [`Fetcher::on_response`]).
    pub(super) fn on_tick(&mut self, serving: Option<(&Gateway, &Emitter)>) {
        if !self.poll.start(events::now_ms()) {
            return;
        }
        let remote = &self.source.remote;
        let headers = self.poll.headers(remote);
        let timeout = Duration::from_millis(remote.timeout_ms);
        match hostcalls::dispatch_http_call(&remote.cluster, headers, None, vec![], timeout) {
            Ok(token) => self.pending = Some(token),
            Err(status) => {
                let pin = self.source.pin.as_deref();
                let outcome = self.poll.answer(Answer::default(), pin, events::now_ms());
                let cause = format!("cannot call cluster `{}`: {status:?}", remote.cluster);
                self.report(&outcome, Some(&cause), serving);
            }
        }
    }

    /// A fetch's answer (other tokens are not ours: `None`). `serving` is the
    /// configuration that serves now, whose event settings report a failure. Returns the
    /// bundle to serve from now on, when one loaded.
    pub(super) fn on_response(
        &mut self,
        token: u32,
        headers: usize,
        body_size: usize,
        serving: Option<(&Gateway, &Emitter)>,
    ) -> Option<Gateway> {
        if self.pending != Some(token) {
            return None;
        }
        self.pending = None;
        let status = call_status(headers);
        let answer = Answer {
            status,
            etag: status.and_then(|_| {
                hostcalls::get_map_value(MapType::HttpCallResponseHeaders, "etag")
                    .ok()
                    .flatten()
            }),
            body: match status {
                Some(200) if body_size <= MAX_BUNDLE_BYTES => {
                    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                        .ok()
                        .flatten()
                }
                _ => None,
            },
        };
        let pin = self.source.pin.as_deref();
        let outcome = self.poll.answer(answer, pin, events::now_ms());
        self.report(&outcome, None, serving);
        match outcome {
            Outcome::Load { gateway, .. } => Some(*gateway),
            _ => None,
        }
    }

    /// Counts an outcome; logs and emits the ones that keep the last good bundle.
    fn report(
        &self,
        outcome: &Outcome,
        cause: Option<&str>,
        serving: Option<(&Gateway, &Emitter)>,
    ) {
        let uri = format!(
            "{}{}",
            self.source.remote.authority, self.source.remote.path
        );
        let (stat, detail) = match outcome {
            Outcome::Load { sha256, .. } => {
                increment(self.fetched);
                log(
                    LogLevel::Info,
                    &format!("remote policy {uri} fetched: sha256 {sha256}"),
                );
                return;
            }
            Outcome::NotModified => {
                increment(self.not_modified);
                return;
            }
            Outcome::Failed(reason) => (self.failed, cause.unwrap_or(reason.as_str()).to_owned()),
            Outcome::RejectedPin { sha256 } => (
                self.rejected_pin,
                format!("sha256 {sha256} is not the pinned one"),
            ),
            Outcome::RejectedCompile(error) => {
                (self.rejected_compile, format!("does not compile: {error}"))
            }
        };
        increment(stat);
        let detail = match serving {
            Some(_) => format!("remote policy {uri} refused ({detail}); the last good one keeps serving"),
            None => format!("remote policy {uri} refused ({detail}); no policy loaded yet, requests are refused"),
        };
        log(LogLevel::Warn, &detail);
        if let Some((gateway, emitter)) = serving {
            let event = Event::system(
                gateway.event_settings(),
                events::now_ms(),
                POLICY_FETCH_FAILED,
                Severity::Medium,
                &detail,
            );
            emitter.emit_at(gateway.log_level(), &event);
        }
    }
}
