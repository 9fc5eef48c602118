//! One VM's root context: the filter's ([`FilterRoot`]), or the event sender's (a
//! bootstrap service, [`SenderRoot`]), as its configuration says. Envoy makes the root
//! before it hands over the configuration, so a root starts as a filter's and becomes the
//! sender's when its configuration is a sender document.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::log;
use super::root::FilterRoot;
use super::sender::Sender;
use crate::events::sink::SenderDocument;

pub(super) enum Root {
    Filter(FilterRoot),
    Sender(SenderRoot),
}

impl Default for Root {
    fn default() -> Self {
        Root::Filter(FilterRoot::default())
    }
}

impl Root {
    fn inner(&mut self) -> &mut dyn RootContext {
        match self {
            Root::Filter(filter) => filter,
            Root::Sender(sender) => sender,
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        (self.inner()).on_http_call_response(token, headers, body, trailers);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let sender = configuration(size).is_some_and(|c| SenderDocument::detect(&c).is_some());
        if sender && matches!(self, Root::Filter(_)) {
            *self = Root::Sender(SenderRoot::default());
        }
        self.inner().on_configure(size)
    }

    fn on_tick(&mut self) {
        self.inner().on_tick();
    }

    fn on_queue_ready(&mut self, queue: u32) {
        self.inner().on_queue_ready(queue);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self {
            Root::Filter(filter) => filter.create_http_context(context_id),
            // The sender runs as a bootstrap service, where no request comes.
            Root::Sender(_) => None,
        }
    }
}

/// The event sender's root: drains the events queue, folds, and posts batches.
#[derive(Default)]
pub(super) struct SenderRoot {
    /// `None` until a sender configuration started it.
    sender: Option<Sender>,
}

impl Context for SenderRoot {
    /// The batches are the only calls out.
    fn on_http_call_response(&mut self, token: u32, headers: usize, _body: usize, _: usize) {
        if let Some(sender) = &mut self.sender {
            sender.on_http_call_response(token, headers);
        }
    }
}

impl RootContext for SenderRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let Some(configuration) = configuration(size) else {
            return false;
        };
        match SenderDocument::detect(&configuration) {
            Some(Ok(config)) => {
                self.sender = Sender::start(config);
                self.sender.is_some()
            }
            Some(Err(error)) => {
                log(
                    LogLevel::Critical,
                    &format!("event sender refused: {error}"),
                );
                false
            }
            None => {
                log(
                    LogLevel::Critical,
                    "event sender refused: a sender VM cannot become a filter",
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(sender) = &mut self.sender {
            sender.on_tick();
        }
    }

    fn on_queue_ready(&mut self, queue: u32) {
        if let Some(sender) = &mut self.sender {
            sender.on_queue_ready(queue);
        }
    }
}

/// The plugin configuration; `None` (logged) when the host cannot give it.
fn configuration(size: usize) -> Option<Vec<u8>> {
    match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
        Ok(bytes) => Some(bytes.unwrap_or_default()),
        Err(status) => {
            log(
                LogLevel::Critical,
                &format!("cannot read the plugin configuration: {status:?}"),
            );
            None
        }
    }
}
