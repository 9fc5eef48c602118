//! [`JwksServer`]: an identity provider's JWKS endpoint, as far as the filter can tell (and
//! a policy server, for the remote policy source: the same endpoint serving a bundle).
//! Tests change the key set it serves (rotation, or any text: garbage, a huge body), take
//! it down and up again and slow it down; it counts the fetches it answered, so a test can
//! prove keys were fetched before any request. Each answer carries an `ETag` of its body,
//! and a request whose `If-None-Match` names the current one is answered 304 (counted
//! apart), as a static file server or CDN does.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    keys: Mutex<String>,
    /// When set, connections are closed unanswered, as by a crashed endpoint.
    down: AtomicBool,
    /// How long each answer waits before it is sent (a slow identity provider).
    delay: Mutex<Duration>,
    fetches: AtomicUsize,
    /// Requests answered 304 (their `If-None-Match` named the body served).
    not_modified: AtomicUsize,
}

/// A JWKS endpoint on an ephemeral loopback port; stopped on drop.
#[derive(Debug)]
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl JwksServer {
    /// Starts serving `keys` (a JWK set as JSON text) on every path.
    pub fn start(keys: &str) -> Result<JwksServer, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(Error::io("starting the JWKS runtime"))?;
        let listener = runtime
            .block_on(TcpListener::bind(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                0,
            ))))
            .map_err(Error::io("binding the JWKS endpoint"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the JWKS address"))?;
        let state = Arc::new(State::default());
        *lock(&state.keys) = keys.to_owned();
        runtime.spawn(serve(listener, Arc::clone(&state)));
        Ok(JwksServer {
            addr,
            state,
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves another body from now on: a key set (a rotation), or any text at all (not
    /// JSON, JSON that is no key set, megabytes), always as a 200 `application/json`.
    pub fn set_keys(&self, keys: &str) {
        *lock(&self.state.keys) = keys.to_owned();
    }

    /// Takes the endpoint down (connections closed unanswered) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers each fetch that arrives from now on only after `delay` (zero: at once).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// How many fetches were answered with keys.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// How many fetches were answered 304 Not Modified.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        if state.down.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let asked = (request.headers().get(http::header::IF_NONE_MATCH))
                    .map(|etag| etag.as_bytes().to_vec());
                answer(Arc::clone(&state), asked)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The key set (or 304 when `if_none_match` names its ETag), or an error (which closes the
/// connection unanswered) while down, also on connections opened before.
async fn answer(
    state: Arc<State>,
    if_none_match: Option<Vec<u8>>,
) -> Result<http::Response<Full<Bytes>>, BoxError> {
    let delay = *lock(&state.delay);
    tokio::time::sleep(delay).await;
    if state.down.load(Ordering::SeqCst) {
        return Err("the JWKS endpoint is down".into());
    }
    let keys = lock(&state.keys).clone();
    let mut hasher = DefaultHasher::new();
    keys.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    if if_none_match.as_deref() == Some(etag.as_bytes()) {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        return Ok(http::Response::builder()
            .status(http::StatusCode::NOT_MODIFIED)
            .header(http::header::ETAG, etag)
            .body(Full::new(Bytes::new()))?);
    }
    state.fetches.fetch_add(1, Ordering::SeqCst);
    Ok(http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ETAG, etag)
        .body(Full::new(Bytes::from(keys)))?)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
