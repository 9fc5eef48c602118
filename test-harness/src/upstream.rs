//! [`EchoUpstream`]: the API behind Envoy in tests. It answers every request with a JSON echo
//! of what it received and records it, so a test can prove what was forwarded — or that a
//! blocked request never arrived.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One request as the upstream received it; also the JSON body of the echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The path exactly as received, without the query.
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

/// An HTTP/1.1 and h2c echo server on its own runtime; stopped on drop.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<RecordedRequest>>>,
    /// `Some` until drop, which shuts it down without blocking on open connections.
    runtime: Option<tokio::runtime::Runtime>,
}

impl EchoUpstream {
    /// Starts on an ephemeral loopback port.
    pub fn start() -> Result<EchoUpstream, Error> {
        EchoUpstream::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    pub fn bind(addr: SocketAddr) -> Result<EchoUpstream, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(Error::io("starting the upstream runtime"))?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .map_err(Error::io(format!("binding the upstream to {addr}")))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the upstream address"))?;
        let received = Arc::default();
        runtime.spawn(serve(listener, Arc::clone(&received)));
        Ok(EchoUpstream {
            addr,
            received,
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<RecordedRequest> {
        lock(&self.received).clone()
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, received: Arc<Mutex<Vec<RecordedRequest>>>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let service = service_fn(move |request| echo(request, Arc::clone(&received)));
            // A connection error (a client resetting, Envoy closing an idle connection) ends
            // only that connection; tests assert on what was recorded, not on this.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(
    request: http::Request<Incoming>,
    received: Arc<Mutex<Vec<RecordedRequest>>>,
) -> Result<http::Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let echo = serde_json::to_vec(&recorded)?;
    lock(&received).push(recorded);
    Ok(http::Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(echo)))?)
}

/// Locks, ignoring poisoning: a panicking test thread must not hide the recording from Drop
/// or other assertions.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
