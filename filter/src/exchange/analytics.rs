//! Per-endpoint analytics (`stats: {analytics: true}`): what one request comes to once
//! its stream ends — its operation, the class of the status the client got, how long it
//! took and how large its bodies were — for the host to record as Envoy stats.
//!
//! Everything here is measured from what the exchange is fed anyway: the clock it reads
//! for every request head, and the body sizes the host reports with each chunk. So the
//! analytics never buffer a body and read no header the checks do not read; what they
//! add is one clock read and the status at the end (`host::analytics`).

/// A body's size as it passed the filter, counted from the sizes the host reports with
/// each chunk. A host reports the whole held body while the filter holds it, and each new
/// chunk once it has let the earlier ones go on, so the count keeps both apart.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BodyMeter {
    /// Bytes of chunks already let go on.
    passed: u64,
    /// Bytes the host holds now (the whole held body, as last reported).
    held: u64,
}

impl BodyMeter {
    /// The host reports `size` bytes; `holding`: the filter keeps holding them (it
    /// answered `Next::Buffer`), so the next report counts them again.
    pub(super) fn seen(&mut self, size: usize, holding: bool) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if holding {
            self.held = size;
        } else {
            self.passed = self.passed.saturating_add(size);
            self.held = 0;
        }
    }

    /// The bytes counted so far.
    pub(super) fn total(self) -> u64 {
        self.passed.saturating_add(self.held)
    }
}

/// The class of a response status, a label of `apiguard.operation.<op>.requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// `1xx` (a protocol switch: Envoy logs a WebSocket upgrade as 101).
    Informational,
    /// `2xx`.
    Success,
    /// `3xx`.
    Redirection,
    /// `4xx`, apiguard's own refusals included.
    ClientError,
    /// `5xx`, Envoy's replies for an upstream that failed included.
    ServerError,
    /// No response began: the client went away (or the stream was reset) first.
    None,
}

impl StatusClass {
    /// Every class, in the order of [`StatusClass::index`].
    pub const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::None,
    ];

    /// The class of the status the client got; `None` (or anything outside 100-599) when
    /// none was sent.
    pub fn of(status: Option<u16>) -> StatusClass {
        match status {
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirection,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::None,
        }
    }

    /// The label value: `2xx`, …, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::None => "none",
        }
    }

    /// The class's place in [`StatusClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One finished request, for the per-operation stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The operation the request matched (its index in the policy); `None` when it matched
    /// none (unknown path or method, or refused before routing).
    pub operation: Option<usize>,
    /// The class of the status the client got.
    pub status: StatusClass,
    /// Milliseconds from the request head reaching the filter to the end of the stream,
    /// by the host's clock.
    pub duration_ms: u64,
    /// Request body bytes that passed the filter (0 for a request without a body; for one
    /// refused before its end, what had arrived).
    pub request_bytes: u64,
    /// Response body bytes that passed the filter, as the upstream (or the filter's own
    /// reply) sent them, before any redaction.
    pub response_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_body_is_reported_whole_each_time_and_a_passed_one_chunk_by_chunk() {
        let mut held = BodyMeter::default();
        for size in [10, 25, 40] {
            held.seen(size, true);
        }
        held.seen(40, false);
        assert_eq!(held.total(), 40);

        let mut streamed = BodyMeter::default();
        for size in [10, 15, 15] {
            streamed.seen(size, false);
        }
        assert_eq!(streamed.total(), 40);

        // Still held when the stream ends (a refusal, or trailers pending).
        let mut cut = BodyMeter::default();
        cut.seen(7, false);
        cut.seen(5, true);
        assert_eq!(cut.total(), 12);
    }

    #[test]
    fn statuses_fall_in_their_classes() {
        let classes: Vec<&str> = [Some(101), Some(204), Some(304), Some(429), Some(503)]
            .into_iter()
            .chain([None, Some(0), Some(600)])
            .map(|status| StatusClass::of(status).as_str())
            .collect();
        assert_eq!(
            classes,
            ["1xx", "2xx", "3xx", "4xx", "5xx", "none", "none", "none"]
        );
        for (i, class) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
