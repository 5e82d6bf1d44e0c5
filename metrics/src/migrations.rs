//! `migrations.csv`: the event column, its row, and the tracker that turns
//! the agents' facts (`Added`, `Removed`, `MovedOut`, `MovedIn`, each move
//! reported by both ends in either order) into one row per move with the
//! container's running count.

use std::collections::HashMap;

use herd_wire::monitor::{ContainerEvent, EventKind};
use serde::{Deserialize, Serialize};

use crate::csv::{cell, fmt_time, CsvError, Fields};

/// The `event` column of `migrations.csv`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Migration {
    Added,
    Removed,
    Moved,
}

impl Migration {
    pub fn as_str(self) -> &'static str {
        match self {
            Migration::Added => "added",
            Migration::Removed => "removed",
            Migration::Moved => "moved",
        }
    }
}

/// One `migrations.csv` row: `from` is empty for `added`, `to` for `removed`;
/// `count` is the container's number of moves so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationRow {
    pub time_ns: u64,
    pub container: String,
    pub from: String,
    pub to: String,
    pub event: Migration,
    pub count: u64,
}

impl MigrationRow {
    pub fn csv_row(&self) -> String {
        [
            fmt_time(self.time_ns),
            cell(&self.container),
            cell(&self.from),
            cell(&self.to),
            self.event.as_str().to_string(),
            self.count.to_string(),
        ]
        .join(",")
    }

    pub fn from_csv_row(row: &str) -> Result<Self, CsvError> {
        let mut f = Fields::new("migrations.csv", row, 6)?;
        let time_ns = f.time()?;
        let (container, from, to) = (f.next(), f.next(), f.next());
        let ev = f.next();
        let event = match ev.as_str() {
            "added" => Migration::Added,
            "removed" => Migration::Removed,
            "moved" => Migration::Moved,
            _ => return Err(f.err(format!("unknown event {ev:?}"))),
        };
        Ok(MigrationRow {
            time_ns,
            container,
            from,
            to,
            event,
            count: f.num()?,
        })
    }
}

/// Turns the agents' facts into `migrations.csv` rows: one `moved` per move
/// (reported by both ends, in either order), `added` the first time a
/// container is seen, `removed` when the host that holds it removes it.
#[derive(Debug, Default)]
pub struct MigrationTracker {
    /// Where each known container is (None: removed).
    at: HashMap<String, Option<String>>,
    moves: HashMap<String, u64>,
}

impl MigrationTracker {
    pub fn location(&self, container: &str) -> Option<&str> {
        self.at.get(container)?.as_deref()
    }

    pub fn moves(&self, container: &str) -> u64 {
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
        let gone: Vec<String> = self
            .at
            .iter()
            .filter(|(c, h)| h.as_deref() == Some(host) && !containers.contains(c))
            .map(|(c, _)| c.clone())
            .collect();
        for c in gone {
            out.extend(self.leave(time_ns, &c, host, None));
        }
        out
    }

    pub fn event(&mut self, ev: &ContainerEvent) -> Option<MigrationRow> {
        let (t, c, h) = (ev.time_ns, ev.container.as_str(), ev.host.as_str());
        match &ev.kind {
            EventKind::Added => self.arrive(t, c, None, h),
            EventKind::MovedIn { from } => self.arrive(t, c, Some(from), h),
            EventKind::Removed => self.leave(t, c, h, None),
            EventKind::MovedOut { to } => self.leave(t, c, h, Some(to)),
        }
    }

    /// `c` is now at `host` (coming from `from`, if it moved).
    fn arrive(&mut self, t: u64, c: &str, from: Option<&str>, host: &str) -> Option<MigrationRow> {
        let prev = self.at.get(c).cloned().flatten();
        if prev.as_deref() == Some(host) {
            return None; // known already (the other end reported the move first)
        }
        self.at.insert(c.to_string(), Some(host.to_string()));
        let from = from.map(str::to_string).or(prev);
        match from {
            Some(from) => Some(self.moved(t, c, from, host.to_string())),
            None => Some(MigrationRow {
                time_ns: t,
                container: c.to_string(),
                from: String::new(),
                to: host.to_string(),
                event: Migration::Added,
                count: self.moves(c),
            }),
        }
    }

    /// `c` left `host` (for `to`, if it moved).
    fn leave(&mut self, t: u64, c: &str, host: &str, to: Option<&str>) -> Option<MigrationRow> {
        let cur = self.at.get(c).cloned().flatten();
        match to {
            Some(to) => {
                if cur.as_deref() == Some(to) {
                    return None; // the target reported it first
                }
                self.at.insert(c.to_string(), Some(to.to_string()));
                Some(self.moved(t, c, host.to_string(), to.to_string()))
            }
            None => {
                if cur.as_deref() != Some(host) {
                    return None; // it is elsewhere: not this host's to remove
                }
                self.at.insert(c.to_string(), None);
                Some(MigrationRow {
                    time_ns: t,
                    container: c.to_string(),
                    from: host.to_string(),
                    to: String::new(),
                    event: Migration::Removed,
                    count: self.moves(c),
                })
            }
        }
    }

    fn moved(&mut self, t: u64, c: &str, from: String, to: String) -> MigrationRow {
        let n = self.moves.entry(c.to_string()).or_insert(0);
        *n += 1;
        MigrationRow {
            time_ns: t,
            container: c.to_string(),
            from,
            to,
            event: Migration::Moved,
            count: *n,
        }
    }
}
