//! Schema learning for a request that goes on to an undeclared endpoint (monitor mode),
//! or for a sampled exchange of a declared operation (`discovery.learn`): its JSON body,
//! then its response's status, media type and JSON body, become [`Lesson`]s for the VM's
//! discovery record.
//!
//! Nothing here decides the request's fate: a body too large to learn from is let through
//! unread, and a body that does not parse teaches nothing. Bodies are held only while
//! they are buffered for reading (up to the policy's body limit), as for a declared
//! operation whose body is checked; a body a check reads anyway is handed over as it is
//! (parsed a second time, for its shape: the cost of a sampled exchange).

use crate::discovery::learn::{media_of, Sample, Schema};
use crate::discovery::{Lesson, Subject};

/// Which body is being buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Request,
    Response { status: u16 },
}

/// What is being learned from one exchange.
#[derive(Debug)]
pub(super) struct Learning {
    about: Subject,
    reading: Option<Reading>,
    /// The media type of the body being read.
    media: Option<String>,
    /// Bytes buffered of the body being read.
    pub(super) buffered: usize,
}

/// What a body step of learning asks of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Nothing: the body goes on unread.
    Nothing,
    /// Keep buffering.
    More,
    /// Hand over the first `n` bytes.
    Read(usize),
}

impl Learning {
    /// Starts learning from a request that goes on: `content_type` is its header,
    /// `has_body` whether a body follows. Answers the request's lesson when there is
    /// nothing to read.
    pub(super) fn start(
        about: Subject,
        content_type: &str,
        has_body: bool,
    ) -> (Learning, Option<Lesson>) {
        let media = media_of(content_type);
        let json = has_body && media.as_ref().is_some_and(|(_, json)| *json);
        let mut learning = Learning {
            about,
            reading: Some(Reading::Request),
            media: media.map(|(essence, _)| essence),
            buffered: 0,
        };
        if json {
            return (learning, None);
        }
        // A request without a body of a known type teaches nothing until its response.
        let lesson = learning.media.is_some().then(|| learning.lesson(None));
        learning.reading = None;
        (learning, lesson.flatten())
    }

    /// Whether a body of this exchange is being buffered for learning.
    pub(super) fn reads(&self) -> bool {
        self.reading.is_some()
    }

    /// The response head: its status and `content-type`; `has_body` whether a body
    /// follows. Answers the lesson when there is nothing to read.
    pub(super) fn response(
        &mut self,
        status: u16,
        content_type: &str,
        has_body: bool,
    ) -> Option<Lesson> {
        let media = media_of(content_type);
        let json = has_body && media.as_ref().is_some_and(|(_, json)| *json);
        self.media = media.map(|(essence, _)| essence);
        self.reading = Some(Reading::Response { status });
        self.buffered = 0;
        if json {
            return None;
        }
        self.lesson(None)
    }

    /// A body has reached `size` bytes; `end_of_stream`: that is all. Past `limit` it is
    /// not learned from: what was learned of the message so far (its media type) is
    /// answered, and the body goes on.
    pub(super) fn data(
        &mut self,
        size: usize,
        end_of_stream: bool,
        limit: usize,
    ) -> (Want, Option<Lesson>) {
        if self.reading.is_none() {
            return (Want::Nothing, None);
        }
        self.buffered = size;
        if size > limit {
            return (Want::Nothing, self.lesson(None));
        }
        let want = if end_of_stream {
            Want::Read(size)
        } else {
            Want::More
        };
        (want, None)
    }

    /// The body being read, complete: its shape. `max_depth`: the policy's JSON nesting
    /// limit, which the parser keeps to.
    pub(super) fn body(&mut self, bytes: &[u8], max_depth: usize) -> Option<Lesson> {
        let schema = Schema::of_body(bytes, max_depth);
        self.lesson(schema)
    }

    /// The lesson of the message being read, which ends its reading.
    fn lesson(&mut self, schema: Option<Schema>) -> Option<Lesson> {
        let media = self.media.take();
        let sample = match self.reading.take()? {
            Reading::Request => Sample::Request { media, schema },
            Reading::Response { status } => Sample::Response {
                status,
                media,
                schema,
            },
        };
        Some(Lesson {
            about: self.about.clone(),
            sample,
        })
    }
}
