//! A small blocking HTTP client for tests and the admin API.
//!
//! General-purpose clients parse request targets as URLs and normalise them (`/a/../b`
//! becomes `/b`, `\` becomes `/`), which would hide exactly the encodings the filter must
//! catch. This one hands the target to hyper untouched, so what a test writes is what Envoy
//! receives. Each request uses a fresh connection: tests stay independent of keep-alive and of
//! Envoy closing a connection after a local reply.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, HOST, TRAILER, TRANSFER_ENCODING};
use http::{Request, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::frames::Frames;
use crate::Error;

/// Bounds every exchange, so a hung proxy fails a test instead of stalling the suite.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The protocol spoken to the server; Envoy's listener accepts both (`codec_type: AUTO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// A blocking client bound to one server address.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    version: HttpVersion,
    runtime: tokio::runtime::Runtime,
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The trailers that ended the body; empty when none came.
    pub trailers: HeaderMap,
}

impl Client {
    pub fn new(addr: SocketAddr, version: HttpVersion) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("starting the client runtime"))?;
        Ok(Client {
            addr,
            version,
            runtime,
        })
    }

    /// `GET target`, where `target` is sent as is (`/v1/pets?limit=1`, `/v1/%2e%2e/x`).
    pub fn get(&self, target: &str) -> Result<Response, Error> {
        self.send(Request::get(target).body(Bytes::new())?)
    }

    /// Sends `request`, whose URI is an origin-form target such as `/v1/pets`. A missing
    /// `host` is filled in with the server address.
    pub fn send(&self, request: Request<Bytes>) -> Result<Response, Error> {
        let (parts, body) = request.into_parts();
        self.send_body(Request::from_parts(parts, Full::new(body)))
    }

    /// Sends `request` with its body in `chunks`, each its own HTTP/1.1 chunk (chunked
    /// transfer coding, no `Content-Length`) or HTTP/2 DATA frame: how a body arrives at
    /// Envoy in pieces.
    pub fn send_chunked(
        &self,
        request: Request<()>,
        chunks: Vec<Bytes>,
    ) -> Result<Response, Error> {
        self.send_with_trailers(request, chunks, None)
    }

    /// As [`Client::send_chunked`], with `trailers` after the last chunk: an HTTP/2 HEADERS
    /// frame with END_STREAM, or HTTP/1.1's chunked trailer section (announced by the
    /// `Trailer` header this adds, without which hyper drops them). Over HTTP/1.1 the body
    /// is always chunked, even a GET's and even when there are no chunks (then a lone last
    /// chunk: a zero-length body).
    pub fn send_with_trailers(
        &self,
        request: Request<()>,
        chunks: Vec<Bytes>,
        trailers: Option<HeaderMap>,
    ) -> Result<Response, Error> {
        let (mut parts, ()) = request.into_parts();
        if self.version == HttpVersion::Http1 {
            // Said outright: hyper sends no body of unknown length with a GET otherwise.
            let chunked = HeaderValue::from_static("chunked");
            parts.headers.insert(TRANSFER_ENCODING, chunked);
        }
        for name in trailers.iter().flat_map(HeaderMap::keys) {
            let name = HeaderValue::from_str(name.as_str()).map_err(http::Error::from)?;
            parts.headers.append(TRAILER, name);
        }
        self.send_body(Request::from_parts(parts, Frames::new(chunks, trailers)))
    }

    fn send_body<B>(&self, request: Request<B>) -> Result<Response, Error>
    where
        B: Body<Data = Bytes, Error = Infallible> + Send + Unpin + 'static,
    {
        let request = self.prepare(request)?;
        let exchange =
            async { tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(request)).await };
        match self.runtime.block_on(exchange) {
            Ok(response) => response,
            Err(_elapsed) => Err(Error::Io {
                context: format!("{:?} request to {}", self.version, self.addr),
                source: std::io::ErrorKind::TimedOut.into(),
            }),
        }
    }

    fn prepare<B>(&self, request: Request<B>) -> Result<Request<B>, Error> {
        let (mut parts, body) = request.into_parts();
        match self.version {
            HttpVersion::Http1 => {
                if !parts.headers.contains_key(HOST) {
                    let host = HeaderValue::try_from(self.addr.to_string());
                    parts.headers.insert(HOST, host.map_err(http::Error::from)?);
                }
            }
            // HTTP/2 carries the authority in the URI (`:authority`), not a header: the
            // request's own when its URI is absolute, else the server address.
            HttpVersion::H2c => {
                let target = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |target| target.as_str());
                let authority = match parts.uri.authority() {
                    Some(authority) => authority.to_string(),
                    None => self.addr.to_string(),
                };
                let uri = Uri::try_from(format!("http://{authority}{target}"));
                parts.uri = uri.map_err(http::Error::from)?;
            }
        }
        Ok(Request::from_parts(parts, body))
    }

    async fn exchange<B>(&self, request: Request<B>) -> Result<Response, Error>
    where
        B: Body<Data = Bytes, Error = Infallible> + Send + Unpin + 'static,
    {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(Error::io(format!("connecting to {}", self.addr)))?;
        let io = TokioIo::new(stream);
        let response = match self.version {
            HttpVersion::Http1 => {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(connection);
                sender.send_request(request).await?
            }
            HttpVersion::H2c => {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                sender.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            trailers: collected.trailers().cloned().unwrap_or_default(),
            body: collected.to_bytes(),
        })
    }
}

impl Response {
    /// The header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}
