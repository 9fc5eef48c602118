//! [`Frames`]: a message body sent frame by frame, data chunks then trailers, as the
//! client's requests and the upstream's replies need to be to reach Envoy in pieces.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// A body of separate chunks, each its own HTTP/1.1 chunk or HTTP/2 DATA frame, then
/// optional trailers (HTTP/2 HEADERS with END_STREAM; an HTTP/1.1 chunked trailer section,
/// which hyper writes only for the names a `Trailer` header lists). Its size is unknown up
/// front.
#[derive(Debug)]
pub(crate) struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    /// Announced up front (`Content-Length`), for a body sent whole.
    size: Option<u64>,
}

impl Frames {
    pub(crate) fn new(chunks: Vec<Bytes>, trailers: Option<HeaderMap>) -> Frames {
        let data = chunks.into_iter().map(Frame::data);
        Frames {
            frames: data.chain(trailers.map(Frame::trailers)).collect(),
            size: None,
        }
    }

    /// One chunk whose length is announced: what a plain `Content-Length` body is.
    pub(crate) fn whole(body: Bytes) -> Frames {
        let size = u64::try_from(body.len()).ok();
        Frames {
            size,
            ..Frames::new(vec![body], None)
        }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.size
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
