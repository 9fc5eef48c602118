//! [`EchoUpstream`]: the API behind Envoy in tests. It answers every request with a JSON echo
//! of what it received and records it, so a test can prove what was forwarded — or that a
//! blocked request never arrived. It also notes each request head as it arrives, before
//! any body ([`EchoUpstream::heads`]), and a request can ask for another answer with the
//! [`Reply`] header: a status, headers, body and trailers of the test's choosing, an
//! answer before the request body is read, no answer at all or half of one (a reset). A [`Fault`]
//! changes the answer to every request, for a client a test cannot add a header to (the
//! event sender posting to this server as its collector). An [`Answer`] gives the status of
//! every request a [`Reply`] does not: an API with state of its own (unknown ids are 404,
//! wrong passwords 401), for clients that cannot know what they will get.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, TRAILER};
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either};
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
    /// Close the connection unanswered as soon as the head arrives, the body unread (an
    /// upstream that crashes mid-request). Only the head is noted ([`EchoUpstream::heads`]).
    pub reset: bool,
    /// Send the head and the first half of the body (announced whole), then reset: an
    /// upstream that crashes while answering.
    pub cut: bool,
}

impl Reply {
    /// The request header that carries a [`Reply`].
    pub const HEADER: &'static str = "x-echo-reply";

    /// The header's value.
    pub fn header_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the upstream does to every request from now on ([`EchoUpstream::set_fault`]);
/// each request is still recorded as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status instead of the request's (a collector answering 500).
    Status(u16),
    /// Answer only after this long (a collector slower than its client's timeout).
    Delay(Duration),
    /// Answer with a body of this many bytes (over a client's cap on an answer).
    Huge(usize),
}

/// The status the upstream gives a request that asks for none in its [`Reply`]
/// ([`EchoUpstream::start_answering`]); 200 without one.
pub type Answer = fn(&RecordedRequest) -> u16;

/// What the connections share with the test.
#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Vec<RecordedRequest>>,
    heads: Mutex<Vec<String>>,
    fault: Mutex<Option<Fault>>,
    answer: Option<Answer>,
}

/// An HTTP/1.1 and h2c echo server on its own runtime; stopped on drop.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// `Some` until drop, which shuts it down without blocking on open connections.
    runtime: Option<tokio::runtime::Runtime>,
}

impl EchoUpstream {
    /// Starts on an ephemeral loopback port.
    pub fn start() -> Result<EchoUpstream, Error> {
        EchoUpstream::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    pub fn bind(addr: SocketAddr) -> Result<EchoUpstream, Error> {
        EchoUpstream::serve(addr, Shared::default())
    }

    /// Starts on an ephemeral loopback port, answering each request with the status
    /// `answer` gives it (still the echo as the body).
    pub fn start_answering(answer: Answer) -> Result<EchoUpstream, Error> {
        let shared = Shared {
            answer: Some(answer),
            ..Shared::default()
        };
        EchoUpstream::serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), shared)
    }

    fn serve(addr: SocketAddr, shared: Shared) -> Result<EchoUpstream, Error> {
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
        let shared = Arc::new(shared);
        runtime.spawn(serve(listener, Arc::clone(&shared)));
        Ok(EchoUpstream {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.received).clone()
    }

    /// Every request head received so far (`METHOD /path`), noted before its body is read:
    /// a request whose head arrived and whose body never completed is here and not in
    /// [`EchoUpstream::received`].
    pub fn heads(&self) -> Vec<String> {
        lock(&self.shared.heads).clone()
    }

    /// Applies `fault` to every request from now on; `None` heals.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *lock(&self.shared.fault) = fault;
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| echo(request, Arc::clone(&shared)));
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
    shared: Arc<Shared>,
) -> Result<http::Response<Either<Frames, Cut>>, BoxError> {
    let (parts, body) = request.into_parts();
    let head = format!("{} {}", parts.method, parts.uri.path());
    lock(&shared.heads).push(head);
    let mut reply: Reply = match parts.headers.get(Reply::HEADER) {
        Some(value) => serde_json::from_slice(value.as_bytes())?,
        None => Reply::default(),
    };
    if reply.reset {
        // A service error makes hyper drop the connection without an answer (HTTP/1.1)
        // or reset the stream (HTTP/2).
        return Err("the request asked for a reset".into());
    }
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
    if let Some(answer) = shared.answer {
        reply.status = reply.status.or(Some(answer(&recorded)));
    }
    lock(&shared.received).push(recorded);
    let fault = *lock(&shared.fault);
    match fault {
        Some(Fault::Status(status)) => reply.status = Some(status),
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Huge(size)) => reply.body = Some(" ".repeat(size)),
        None => {}
    }
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
    let body = if reply.cut {
        Either::Right(Cut::new(body))
    } else if trailers.is_empty() && !reply.chunked {
        Either::Left(Frames::whole(body))
    } else {
        let trailers = Some(trailers).filter(|t| !t.is_empty());
        Either::Left(Frames::new(vec![body], trailers))
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status.unwrap_or(200))?;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A body announced at its full length of which only the first half is sent, then an
/// error, on which hyper drops the connection (HTTP/1.1) or resets the stream (HTTP/2).
#[derive(Debug)]
struct Cut {
    half: Option<Bytes>,
    size: u64,
}

impl Cut {
    fn new(mut body: Bytes) -> Cut {
        let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
        body.truncate(body.len() / 2);
        Cut {
            half: Some(body),
            size,
        }
    }
}

impl Body for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(Some(match self.half.take() {
            Some(half) => Ok(Frame::data(half)),
            None => Err("the reply asked to be cut".into()),
        }))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
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
