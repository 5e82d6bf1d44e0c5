//! The migration journal: one record per migration and side under
//! `<state>/migrations/<id>.json`, written to a temporary file, fsynced,
//! renamed and the directory fsynced, before the agent acts on it (see
//! [`herd_wire::handoff`] for what each step means).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use herd_wire::handoff::{valid_id, Journal, Step};

use crate::error::{AgentError, IoContext, Result};

pub struct Journals {
    dir: PathBuf,
}

impl Journals {
    pub fn open(state_root: &std::path::Path) -> Result<Self> {
        let dir = state_root.join("migrations");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        Ok(Journals { dir })
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(AgentError::Invalid {
                what: "migration id",
                reason: format!("{id:?} is not a plain token"),
            });
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Durable before it returns.
    pub fn write(&self, j: &Journal) -> Result<()> {
        let path = self.path(&j.id)?;
        let tmp = path.with_extension("json.tmp");
        let err = || format!("journal {}", path.display());
        let data = serde_json::to_vec_pretty(j).ctx(|| "encode journal".into())?;
        let mut f = fs::File::create(&tmp).ctx(err)?;
        f.write_all(&data).and_then(|_| f.sync_all()).ctx(err)?;
        fs::rename(&tmp, &path).ctx(err)?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx(err)
    }

    pub fn step(&self, j: &Journal, step: Step) -> Result<()> {
        self.write(&Journal { step, ..j.clone() })
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let path = self.path(id)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).ctx(|| format!("remove journal {}", path.display()))
            }
            _ => {}
        }
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("sync {}", self.dir.display()))
    }

    /// Every record; unreadable ones are reported and left alone.
    pub fn list(&self) -> Vec<Journal> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().map(|x| x != "json").unwrap_or(true) {
                continue;
            }
            match fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<Journal>(&d).map_err(|e| e.to_string()))
            {
                Ok(j) => v.push(j),
                Err(e) => tracing::error!(path = %p.display(), "unreadable migration journal: {e}"),
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_wire::handoff::{Decision, Role};

    #[test]
    fn records_survive_reopen_and_bad_ids_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journals::open(dir.path()).expect("open");
        let rec = Journal {
            id: "n1.c.1".into(),
            role: Role::Source,
            container: "c".into(),
            peer: "n2".into(),
            peer_addr: Some("10.0.0.2:7700".into()),
            step: Step::Dumping,
        };
        j.write(&rec).expect("write");
        j.step(&rec, Step::Decided(Decision::Go)).expect("step");
        let again = Journals::open(dir.path()).expect("reopen").list();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].step, Step::Decided(Decision::Go));
        assert!(j
            .write(&Journal {
                id: "../x".into(),
                ..rec.clone()
            })
            .is_err());
        j.remove("n1.c.1").expect("remove");
        j.remove("n1.c.1").expect("remove twice");
        assert!(j.list().is_empty());
    }
}
