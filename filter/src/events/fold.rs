//! Folding floods: repeated identical findings (same rule, client and operation) within a
//! window become one event with a count.
//!
//! It runs twice: in each filter VM (per worker, over a short window, so that a flood
//! costs neither an OCSF line in Envoy's log nor a queued record per request), and in the
//! sender (over the process, with the window its configuration names).
//!
//! The first finding of a key goes out at once, so a SIEM sees an attack start without
//! delay; repeats within the window are only counted, and when the window closes one
//! event stands for all of them (`count`, `time` of the first repeat, `end_time` of the
//! last). Time is an input (milliseconds), so the structure is tested without a clock.
//! At most `max_keys` keys are tracked: beyond that, findings pass through unfolded, which
//! the sender's queue bound then limits.

use std::collections::HashMap;

use super::Event;

/// The aggregation key: rule, client, operation (operationId, else template, else path).
type Key = (String, Option<String>, Option<String>);

#[derive(Debug)]
pub(crate) struct Folder {
    window_ms: u64,
    max_keys: usize,
    open: HashMap<Key, Window>,
    /// Folded repeats of windows that closed before [`Folder::expire`] came (its tick was
    /// late) and that a new finding of their key then reopened; the next `expire` hands
    /// them out. At most `max_keys`.
    due: Vec<Event>,
}

#[derive(Debug)]
struct Window {
    closes_at: u64,
    /// The first repeat, carrying the running count; `None` while there was none.
    repeats: Option<Event>,
}

impl Folder {
    pub(crate) fn new(window_ms: u64, max_keys: usize) -> Folder {
        Folder {
            window_ms,
            max_keys,
            open: HashMap::new(),
            due: Vec::new(),
        }
    }

    /// Takes one event observed at `now_ms`: returns it if it is to be sent now, `None`
    /// if it was counted in an open window.
    pub(crate) fn offer(&mut self, event: Event, now_ms: u64) -> Option<Event> {
        if self.fold(&event, now_ms) {
            None
        } else {
            Some(event)
        }
    }

    /// [`Folder::offer`] for a borrowed event: `true` if it was counted in an open window,
    /// `false` if it is to be sent now (a window is then opened for its repeats). The
    /// event is copied only when it becomes a window's first repeat, so a flood of
    /// repeats costs a lookup and a count each.
    pub(crate) fn fold(&mut self, event: &Event, now_ms: u64) -> bool {
        if self.window_ms == 0 {
            return false;
        }
        let key = key(event);
        if let Some(window) = self.open.get_mut(&key) {
            if now_ms < window.closes_at {
                match &mut window.repeats {
                    Some(folded) => {
                        folded.count = folded.count.saturating_add(event.count);
                        folded.end_time_ms = folded.end_time_ms.max(event.end_time_ms);
                    }
                    None => window.repeats = Some(event.clone()),
                }
                return true;
            }
            // Closed, but not expired yet (the VM's tick comes up to half a window late).
            // Its repeats wait in `due` and this finding opens the next window: otherwise
            // every repeat until the tick would be sent on its own, a log line each.
            if self.due.len() < self.max_keys {
                if let Some(repeats) = window.repeats.take() {
                    self.due.push(repeats);
                    window.closes_at = now_ms.saturating_add(self.window_ms);
                    return false;
                }
            }
        }
        if self.open.len() < self.max_keys || self.open.contains_key(&key) {
            // A closed window still waiting for `expire` is replaced only after its
            // repeats were handed out, so none are lost.
            if let Some(Window {
                repeats: Some(_), ..
            }) = self.open.get(&key)
            {
                return false;
            }
            self.open.insert(
                key,
                Window {
                    closes_at: now_ms.saturating_add(self.window_ms),
                    repeats: None,
                },
            );
        }
        false
    }

    /// Closes the windows that ended by `now_ms` and returns one event per window that
    /// folded repeats (with those a finding reopened since the last call).
    pub(crate) fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.due);
        self.open.retain(|_, window| {
            if now_ms < window.closes_at {
                return true;
            }
            out.extend(window.repeats.take());
            false
        });
        out.sort_by_key(|e| e.time_ms);
        out
    }
}

fn key(event: &Event) -> Key {
    let request = event.request.as_ref();
    // Without an operation id, the method tells operations of one path apart.
    let operation = request.and_then(|r| {
        let method = r.method.as_deref().unwrap_or_default();
        r.operation_id.clone().or_else(|| {
            let path = r.path_template.as_ref().or(r.path.as_ref())?;
            Some(format!("{method} {path}"))
        })
    });
    (
        event.rule.clone(),
        request.and_then(|r| r.client.clone()),
        operation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventAction, EventSettings, RequestFacts, Severity};

    fn event(rule: &str, client: &str, time_ms: u64) -> Event {
        let mut e = Event::system(
            &EventSettings::default(),
            time_ms,
            rule,
            Severity::Low,
            "test",
        );
        e.action = EventAction::Blocked;
        e.request = Some(RequestFacts {
            client: Some(client.to_owned()),
            path: Some("/admin".to_owned()),
            ..RequestFacts::default()
        });
        e
    }

    fn sent(offered: Option<Event>) -> bool {
        offered.is_some()
    }

    #[test]
    fn repeats_within_the_window_fold_into_one_event_with_a_count() {
        let mut folder = Folder::new(1_000, 16);
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
        for t in 1..=5 {
            assert_eq!(folder.offer(event("r", "a", t * 10), t * 10), None);
        }
        assert!(folder.expire(999).is_empty(), "the window is still open");
        let folded = folder.expire(1_000);
        assert_eq!(folded.len(), 1);
        assert_eq!(
            (folded[0].count, folded[0].time_ms, folded[0].end_time_ms),
            (5, 10, 50)
        );
        // After the window a finding is sent at once again.
        assert!(sent(folder.offer(event("r", "a", 1_500), 1_500)));
    }

    #[test]
    fn different_rules_or_clients_are_not_folded() {
        let mut folder = Folder::new(1_000, 16);
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
        assert!(sent(folder.offer(event("r", "b", 1), 1)));
        assert!(sent(folder.offer(event("s", "a", 2), 2)));
        assert!(folder.expire(5_000).is_empty(), "nothing was repeated");
    }

    #[test]
    fn a_single_finding_leaves_nothing_behind() {
        let mut folder = Folder::new(1_000, 16);
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
        assert!(folder.expire(2_000).is_empty());
        assert!(folder.open.is_empty());
    }

    #[test]
    fn beyond_the_key_budget_findings_pass_unfolded() {
        let mut folder = Folder::new(1_000, 1);
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
        assert!(sent(folder.offer(event("r", "b", 1), 1)));
        assert!(sent(folder.offer(event("r", "b", 2), 2)));
        assert_eq!(folder.offer(event("r", "a", 3), 3), None);
    }

    #[test]
    fn a_borrowed_flood_sends_the_first_and_counts_the_rest_until_the_window_closes() {
        // The filter VM's path: events are borrowed, the first goes out, the repeats are
        // counted, and the tick after the window hands out one event with their count.
        let mut folder = Folder::new(1_000, 16);
        let first = event("r", "a", 5);
        assert!(!folder.fold(&first, 5), "the first is sent at once");
        for t in 6..=105 {
            assert!(
                folder.fold(&event("r", "a", t), t),
                "a repeat at {t} is counted"
            );
        }
        assert!(folder.expire(1_004).is_empty(), "the window is still open");
        let folded = folder.expire(1_005);
        assert_eq!(folded.len(), 1);
        assert_eq!(
            (folded[0].count, folded[0].time_ms, folded[0].end_time_ms),
            (100, 6, 105)
        );
        // A finding after the window is first again.
        assert!(!folder.fold(&event("r", "a", 1_006), 1_006));
        assert!(folder.expire(10_000).is_empty(), "it had no repeats");
    }

    #[test]
    fn a_repeat_after_an_unexpired_closed_window_is_sent_and_its_count_kept() {
        // The tick is late: the window closed at 1 000 but was not expired yet.
        let mut folder = Folder::new(1_000, 16);
        assert!(!folder.fold(&event("r", "a", 0), 0));
        assert!(folder.fold(&event("r", "a", 10), 10));
        assert!(
            !folder.fold(&event("r", "a", 1_200), 1_200),
            "sent, not lost"
        );
        let folded = folder.expire(1_300);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].count, 1);
    }

    #[test]
    fn a_flood_past_an_unexpired_closed_window_is_folded_into_the_next() {
        // The tick is late: the window closed at 1 000 and is expired at 1 700 only. The
        // first finding after the close is sent and opens the next window; its repeats are
        // counted again at once, not sent one by one until the tick.
        let mut folder = Folder::new(1_000, 16);
        assert!(!folder.fold(&event("r", "a", 0), 0));
        assert!(folder.fold(&event("r", "a", 10), 10));
        assert!(!folder.fold(&event("r", "a", 1_200), 1_200));
        for t in 1_201..=1_600 {
            assert!(
                folder.fold(&event("r", "a", t), t),
                "a repeat at {t} is counted"
            );
        }
        let folded = folder.expire(1_700);
        assert_eq!(
            folded.len(),
            1,
            "the first window's count; the next is open"
        );
        assert_eq!((folded[0].count, folded[0].time_ms), (1, 10));
        let folded = folder.expire(2_200);
        assert_eq!(folded.len(), 1);
        assert_eq!(
            (folded[0].count, folded[0].time_ms, folded[0].end_time_ms),
            (400, 1_201, 1_600)
        );
    }

    #[test]
    fn a_zero_window_folds_nothing() {
        let mut folder = Folder::new(0, 16);
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
        assert!(sent(folder.offer(event("r", "a", 0), 0)));
    }
}
