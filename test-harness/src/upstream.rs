//! [`EchoUpstream`]: the API behind Envoy in tests. It answers every request with a JSON echo
//! of what it received and records it, so a test can prove what was forwarded — or that a
//! blocked request never arrived. It also notes each request head as it arrives, before
//! any body ([`EchoUpstream::heads`]), and a request can ask for another answer with the
//! [`Reply`] header: a status, headers, body and trailers of the test's choosing, or an
//! answer before the request body is read.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, TRAILER};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::frames::Frames;
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

/// Another answer than the echo, asked for by a request's [`Reply::HEADER`] (as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reply {
    /// 200 when absent.
    pub status: Option<u16>,
    /// Added to (or replacing) the echo's `content-type: application/json`.
    pub headers: BTreeMap<String, String>,
    /// Headers added only when the request's `Accept-Encoding` names `gzip`: an upstream
    /// that compresses when asked. (The body stays as written: nothing on the path decodes
    /// it, the header is what a filter must go by.)
    pub if_gzip_accepted: BTreeMap<String, String>,
    /// The body instead of the echo.
    pub body: Option<String>,
    /// Sent without `Content-Length` (HTTP/1.1 chunked), as a body whose size is not
    /// known up front.
    pub chunked: bool,
    /// Trailers after the body (HTTP/1.1 sends them only to a request with `te: trailers`).
    pub trailers: BTreeMap<String, String>,
    /// Answer as soon as the head arrives, without reading the request body (which is then
    /// recorded empty).
    pub early: bool,
}

impl Reply {
    /// The request header that carries a [`Reply`].
    pub const HEADER: &'static str = "x-echo-reply";

    /// The header's value.
    pub fn header_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

type Recorded<T> = Arc<Mutex<Vec<T>>>;

/// An HTTP/1.1 and h2c echo server on its own runtime; stopped on drop.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    received: Recorded<RecordedRequest>,
    heads: Recorded<String>,
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
        let (received, heads) = (Arc::default(), Arc::default());
        runtime.spawn(serve(listener, Arc::clone(&received), Arc::clone(&heads)));
        Ok(EchoUpstream {
            addr,
            received,
            heads,
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

    /// Every request head received so far (`METHOD /path`), noted before its body is read:
    /// a request whose head arrived and whose body never completed is here and not in
    /// [`EchoUpstream::received`].
    pub fn heads(&self) -> Vec<String> {
        lock(&self.heads).clone()
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(
    listener: TcpListener,
    received: Recorded<RecordedRequest>,
    heads: Recorded<String>,
) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let (received, heads) = (Arc::clone(&received), Arc::clone(&heads));
        tokio::spawn(async move {
            let service =
                service_fn(move |request| echo(request, Arc::clone(&received), Arc::clone(&heads)));
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
    received: Recorded<RecordedRequest>,
    heads: Recorded<String>,
) -> Result<http::Response<Frames>, BoxError> {
    let (parts, body) = request.into_parts();
    lock(&heads).push(format!("{} {}", parts.method, parts.uri.path()));
    let reply: Reply = match parts.headers.get(Reply::HEADER) {
        Some(value) => serde_json::from_slice(value.as_bytes())?,
        None => Reply::default(),
    };
    let body = if reply.early {
        Bytes::new()
    } else {
        body.collect().await?.to_bytes()
    };
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
    let body = reply.body.map_or(Bytes::from(echo), Bytes::from);
    let gzip_accepted = (parts.headers.get_all(ACCEPT_ENCODING).iter())
        .any(|value| String::from_utf8_lossy(value.as_bytes()).contains("gzip"));
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let added = reply.headers.iter();
    let compressed = reply.if_gzip_accepted.iter().filter(|_| gzip_accepted);
    for (name, value) in added.chain(compressed) {
        headers.insert(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    let trailers = header_map(&reply.trailers)?;
    for name in trailers.keys() {
        headers.append(TRAILER, HeaderValue::from_str(name.as_str())?);
    }
    let body = if trailers.is_empty() && !reply.chunked {
        Frames::whole(body)
    } else {
        Frames::new(vec![body], Some(trailers).filter(|t| !t.is_empty()))
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status.unwrap_or(200))?;
    *response.headers_mut() = headers;
    Ok(response)
}

fn header_map(pairs: &BTreeMap<String, String>) -> Result<HeaderMap, BoxError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    Ok(map)
}

/// Locks, ignoring poisoning: a panicking test thread must not hide the recording from Drop
/// or other assertions.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
