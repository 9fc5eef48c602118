//! The one event sender per Envoy process: the same `.wasm`, loaded as a bootstrap Wasm
//! service with `singleton: true` and a `{"sender": …}` configuration.
//!
//! Filter VMs (one per worker) enqueue events on the shared queue [`events::QUEUE`]; the
//! host wakes the sender (on the main thread) for each, and it drains the queue at once,
//! folds floods, and keeps at most `queue_max` events waiting. Every `flush_ms` it posts
//! one batch (at most `batch_max` events) to the collector cluster with
//! `dispatch_http_call`, one call at a time. A batch the collector does not accept with a
//! 2xx, or that times out, is dropped and counted; so are events beyond `queue_max`
//! while the collector is slow or down. Requests never wait for any of this.
//!
//! Counters: `apiguard.events.sent`, `….dropped`, `….folded`, `apiguard.events.batches_failed`.
//! The first three count findings, not records: an event the filter VMs already folded
//! from N findings counts N.

use std::collections::VecDeque;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType};

use super::events::now_ms;
use super::{call_status, log};
use crate::events::fold::Folder;
use crate::events::sink::{SenderConfig, CONTENT_TYPE};
use crate::events::{self, Event};

pub(super) struct Sender {
    config: SenderConfig,
    queue: u32,
    folder: Folder,
    waiting: VecDeque<Event>,
    /// The call in flight and how many findings it carries.
    in_flight: Option<(u32, usize)>,
    sent: Option<u32>,
    dropped: Option<u32>,
    folded: Option<u32>,
    failed: Option<u32>,
}

impl Sender {
    /// Registers the queue and the flush timer; `None` (logged) if the host refuses.
    pub(super) fn start(config: SenderConfig) -> Option<Sender> {
        let queue = match hostcalls::register_shared_queue(events::QUEUE) {
            Ok(queue) => queue,
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("event sender: cannot register the queue: {status:?}"),
                );
                return None;
            }
        };
        if let Err(status) = hostcalls::set_tick_period(Duration::from_millis(config.flush_ms)) {
            log(
                LogLevel::Critical,
                &format!("event sender: cannot set the flush timer: {status:?}"),
            );
            return None;
        }
        log(
            LogLevel::Info,
            &format!(
                "event sender: posting {:?} batches to cluster `{}`",
                config.format, config.cluster
            ),
        );
        Some(Sender {
            folder: Folder::new(config.fold_window_ms, config.fold_keys_max),
            config,
            queue,
            waiting: VecDeque::new(),
            in_flight: None,
            sent: counter("apiguard.events.sent"),
            dropped: counter("apiguard.events.dropped"),
            folded: counter("apiguard.events.folded"),
            failed: counter("apiguard.events.batches_failed"),
        })
    }

    /// Drains the queue.
    pub(super) fn on_queue_ready(&mut self, queue: u32) {
        if queue != self.queue {
            return;
        }
        let now = now_ms();
        while let Ok(Some(bytes)) = hostcalls::dequeue_shared_queue(self.queue) {
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => {
                    let count = findings(&event);
                    match self.folder.offer(event, now) {
                        Some(event) => self.wait(event),
                        None => add(self.folded, count),
                    }
                }
                // Only filter VMs of the same .wasm write here; a record this build
                // cannot read (a mixed rollout) is dropped, not guessed at.
                Err(_) => add(self.dropped, 1),
            }
        }
    }

    /// Closes fold windows and posts a batch if none is in flight.
    pub(super) fn on_tick(&mut self) {
        for event in self.folder.expire(now_ms()) {
            self.wait(event);
        }
        self.flush();
    }

    /// Posts the oldest waiting events as one batch, unless a batch is in flight.
    fn flush(&mut self) {
        if self.in_flight.is_some() || self.waiting.is_empty() {
            return;
        }
        let take = self.waiting.len().min(self.config.batch_max.max(1));
        let batch: Vec<Event> = self.waiting.drain(..take).collect();
        let body = self.config.format.body(&batch);
        let authority = self
            .config
            .authority
            .as_deref()
            .unwrap_or(&self.config.cluster);
        let mut headers = vec![
            (":method", "POST"),
            (":path", self.config.path.as_str()),
            (":authority", authority),
            ("content-type", CONTENT_TYPE),
        ];
        headers.extend(
            self.config
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match hostcalls::dispatch_http_call(
            &self.config.cluster,
            headers,
            Some(&body),
            vec![],
            timeout,
        ) {
            Ok(token) => self.in_flight = Some((token, findings_in(&batch))),
            Err(status) => {
                log(
                    LogLevel::Warn,
                    &format!("event sender: cannot call the collector: {status:?}"),
                );
                self.failed_batch(findings_in(&batch));
            }
        }
    }

    /// The collector answered with `headers` headers (none: the call failed).
    pub(super) fn on_http_call_response(&mut self, token: u32, headers: usize) {
        let Some((expected, count)) = self.in_flight else {
            return;
        };
        if token != expected {
            return;
        }
        self.in_flight = None;
        let status = call_status(headers);
        match status {
            Some(200..=299) => {
                add(self.sent, count);
                // A backlog goes out batch after batch rather than one per tick, so a
                // healthy collector is not limited to `batch_max` events per `flush_ms`.
                if self.waiting.len() >= self.config.batch_max {
                    self.flush();
                }
            }
            _ => {
                log(
                    LogLevel::Warn,
                    &format!("event sender: the collector refused a batch (status {status:?}); {count} findings dropped"),
                );
                self.failed_batch(count);
            }
        }
    }

    fn wait(&mut self, event: Event) {
        if self.waiting.len() >= self.config.queue_max {
            add(self.dropped, findings(&event));
        } else {
            self.waiting.push_back(event);
        }
    }

    fn failed_batch(&self, count: usize) {
        add(self.failed, 1);
        add(self.dropped, count);
    }
}

/// The findings an event stands for.
fn findings(event: &Event) -> usize {
    usize::try_from(event.count).unwrap_or(usize::MAX)
}

fn findings_in(batch: &[Event]) -> usize {
    batch.iter().map(findings).fold(0, usize::saturating_add)
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn add(id: Option<u32>, count: usize) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, i64::try_from(count).unwrap_or(i64::MAX));
    }
}
