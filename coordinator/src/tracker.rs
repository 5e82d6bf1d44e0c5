//! The migration tracker: where each container is, how often it moved, when
//! it last moved and whether a move is under way. One type for both feeds:
//!
//! * the agents' facts (`herd monitor`, `herd coordinator`): `Added`,
//!   `Removed`, `MovedOut{to}` (the source, once the target confirmed) and
//!   `MovedIn{from}` (the target, after its restore), each move reported by
//!   both ends in either order. [`MigrationTracker::present`] and
//!   [`MigrationTracker::event`] turn them into `migrations.csv` rows: one
//!   `moved` per move with the container's running count, `added` the first
//!   time a container is seen, `removed` when the host that holds it
//!   removes it;
//! * `migrations.csv` rows ([`MigrationTracker::record`]: the simulator's
//!   own moves, or the rows the facts made), plus the executor's
//!   [`started`](MigrationTracker::started) /
//!   [`failed`](MigrationTracker::failed), which give the policies each
//!   container's cooldown and in-flight state.

use std::collections::HashMap;

use herd_wire::monitor::{ContainerEvent, EventKind};

use crate::csv::{secs, MigrationEvent, MigrationRow};

#[derive(Debug, Clone, Default)]
pub struct MigrationTracker {
    /// Where each known container is (None: removed).
    at: HashMap<String, Option<String>>,
    /// Moves so far per container (kept after a removal).
    moves: HashMap<String, u32>,
    /// Time and count of the last move, for the cooldown.
    last: HashMap<String, (f64, u32)>,
    in_flight: HashMap<String, f64>,
}

impl MigrationTracker {
    /// A `migrations.csv` row: the simulator's own moves, or a row made by
    /// [`event`](Self::event) / [`present`](Self::present).
    pub fn record(&mut self, ev: &MigrationRow) {
        match ev.event {
            MigrationEvent::Moved => {
                let e = self.last.entry(ev.container.clone()).or_insert((0.0, 0));
                *e = (ev.time, e.1.max(ev.count));
                self.in_flight.remove(&ev.container);
                let n = self.moves.entry(ev.container.clone()).or_insert(0);
                *n = (*n).max(ev.count);
                self.at.insert(ev.container.clone(), Some(ev.to.clone()));
            }
            MigrationEvent::Removed => {
                self.last.remove(&ev.container);
                self.in_flight.remove(&ev.container);
                self.at.insert(ev.container.clone(), None);
            }
            MigrationEvent::Added => {
                if !ev.to.is_empty() {
                    self.at.insert(ev.container.clone(), Some(ev.to.clone()));
                }
            }
        }
    }

    /// A plan for `container` was handed to an executor at `time`.
    pub fn started(&mut self, container: &str, time: f64) {
        self.in_flight.insert(container.to_string(), time);
    }

    /// The executor gave up on `container`'s move: it counts as a move for
    /// the cooldown (so a failing move is not retried at once).
    pub fn failed(&mut self, container: &str, time: f64) {
        self.in_flight.remove(container);
        let e = self.last.entry(container.to_string()).or_insert((0.0, 0));
        e.0 = time;
    }

    pub fn last_moved(&self, container: &str) -> Option<(f64, u32)> {
        self.last.get(container).copied()
    }

    pub fn migrating(&self, container: &str) -> bool {
        self.in_flight.contains_key(container)
    }

    /// The host `container` is on, if known and not removed.
    pub fn location(&self, container: &str) -> Option<&str> {
        self.at.get(container)?.as_deref()
    }

    pub fn moves(&self, container: &str) -> u32 {
        self.moves.get(container).copied().unwrap_or(0)
    }

    /// A host's list of what runs there (subscription start, reconnect).
    /// Containers recorded at that host but missing from the list were
    /// removed (or moved while we were not listening: a later `MovedIn`
    /// elsewhere still counts the move).
    pub fn present(
        &mut self,
        time_ns: u64,
        host: &str,
        containers: &[String],
    ) -> Vec<MigrationRow> {
        let mut out = Vec::new();
        for c in containers {
            if let Some(r) = self.arrive(time_ns, c, None, host) {
                out.push(r);
            }
        }
        let mut gone: Vec<String> = self
            .at
            .iter()
            .filter(|(c, h)| h.as_deref() == Some(host) && !containers.contains(c))
            .map(|(c, _)| c.clone())
            .collect();
        gone.sort();
        for c in gone {
            out.extend(self.leave(time_ns, &c, host, None));
        }
        out
    }

    /// One fact of an agent; the row it makes, if any.
    pub fn event(&mut self, ev: &ContainerEvent) -> Option<MigrationRow> {
        let (t, c, h) = (ev.time_ns, ev.container.as_str(), ev.host.as_str());
        match &ev.kind {
            EventKind::Added => self.arrive(t, c, None, h),
            EventKind::MovedIn { from } => self.arrive(t, c, Some(from), h),
            EventKind::Removed => self.leave(t, c, h, None),
            EventKind::MovedOut { to } => self.leave(t, c, h, Some(to)),
        }
    }

    fn row(
        &mut self,
        t: u64,
        c: &str,
        from: String,
        to: String,
        event: MigrationEvent,
    ) -> MigrationRow {
        let count = match event {
            MigrationEvent::Moved => self.moves(c) + 1,
            _ => self.moves(c),
        };
        let r = MigrationRow {
            time: secs(t),
            container: c.to_string(),
            from,
            to,
            event,
            count,
            frozen_seconds: None,
        };
        self.record(&r);
        r
    }

    /// `c` is now at `host` (coming from `from`, if it moved).
    fn arrive(&mut self, t: u64, c: &str, from: Option<&str>, host: &str) -> Option<MigrationRow> {
        let prev = self.at.get(c).cloned().flatten();
        if prev.as_deref() == Some(host) {
            return None; // known already (the other end reported the move first)
        }
        let from = from.map(str::to_string).or(prev);
        Some(match from {
            Some(from) => self.row(t, c, from, host.to_string(), MigrationEvent::Moved),
            None => self.row(t, c, String::new(), host.to_string(), MigrationEvent::Added),
        })
    }

    /// `c` left `host` (for `to`, if it moved).
    fn leave(&mut self, t: u64, c: &str, host: &str, to: Option<&str>) -> Option<MigrationRow> {
        let cur = self.at.get(c).cloned().flatten();
        match to {
            Some(to) => {
                if cur.as_deref() == Some(to) {
                    return None; // the target reported it first
                }
                Some(self.row(
                    t,
                    c,
                    host.to_string(),
                    to.to_string(),
                    MigrationEvent::Moved,
                ))
            }
            None => {
                if cur.as_deref() != Some(host) {
                    return None; // it is elsewhere: not this host's to remove
                }
                Some(self.row(
                    t,
                    c,
                    host.to_string(),
                    String::new(),
                    MigrationEvent::Removed,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(host: &str, c: &str, kind: EventKind) -> ContainerEvent {
        ContainerEvent {
            time_ns: 1,
            host: host.into(),
            container: c.into(),
            kind,
        }
    }

    #[test]
    fn a_move_reported_by_both_ends_counts_once_in_either_order() {
        let mut t = MigrationTracker::default();
        let r = t.present(0, "n1", &["c".into()]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event, MigrationEvent::Added);
        // Target first, then source.
        let r = t.event(&ev("n2", "c", EventKind::MovedIn { from: "n1".into() }));
        let r = r.unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str(), r.to.as_str()),
            (MigrationEvent::Moved, 1, "n1", "n2")
        );
        assert!(t
            .event(&ev("n1", "c", EventKind::MovedOut { to: "n2".into() }))
            .is_none());
        // Source first, then target.
        let r = t
            .event(&ev("n2", "c", EventKind::MovedOut { to: "n3".into() }))
            .unwrap();
        assert_eq!((r.count, r.to.as_str()), (2, "n3"));
        assert!(t
            .event(&ev("n3", "c", EventKind::MovedIn { from: "n2".into() }))
            .is_none());
        // The source's list no longer has it: no "removed".
        assert!(t.present(5, "n2", &[]).is_empty());
        assert_eq!(t.location("c"), Some("n3"));
        let r = t.event(&ev("n3", "c", EventKind::Removed)).unwrap();
        assert_eq!(
            (r.event, r.count, r.from.as_str()),
            (MigrationEvent::Removed, 2, "n3")
        );
        // A stale remove from another host changes nothing.
        assert!(t.event(&ev("n1", "c", EventKind::Removed)).is_none());
    }
}
