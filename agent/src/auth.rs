//! Who may ask the agent what: one function from (certificate, request) to
//! allow or deny, called by the server before anything else looks at a
//! request.
//!
//! Every peer has a certificate from the cluster CA (the handshake refuses
//! anyone else); its `OU` is its role. People and tools (the `herd` CLI, the
//! coordinator) hold a `user` certificate; agents hold a `node` certificate
//! named after their node and use it only for agent-to-agent traffic.
//!
//! | request | `user` | `node` |
//! |---|---|---|
//! | `Ping` | yes | yes |
//! | `Inspect` | yes | yes (a migration source asks whether its container runs on the target) |
//! | `MigrateIn` | **no** | yes, when `Prepare.source_node` is the certificate's own name |
//! | `Handoff` (resolve a journalled migration) | **no** | yes |
//! | `MigratePages` (the page stream of `--memory-mode stream`) | **no** | yes, for a migration it is the source of |
//! | `Run`, `List`, `Logs`, `Exec`, `Stop`, `Start`, `Kill`, `Remove` | yes | no |
//! | `ImageImport`, `ImageList`, `ImageRemove` | yes | no |
//! | `Checkpoint`, `Restore`, `RestoreImport`, `Migrate` | yes | no |
//! | `NetworkCreate`, `NetworkList`, `NetworkRemove`, `Subscribe` | yes | no |
//!
//! Why a node certificate is not a user certificate: a node's key sits on
//! that node (for IoT hosts, in the field); stealing it must let an attacker
//! impersonate that one node to its peers, not run or exec containers
//! anywhere in the cluster. Why a user cannot send `MigrateIn`: it pushes
//! checkpoint images that CRIU restores as root, so only a peer agent may.
//! A node's identity is bound to its certificate: any node name a request
//! carries (today `Prepare.source_node`) must be the certificate's name,
//! and a request that names a migration (`Handoff`'s id, `Prepare.id`) must
//! name one whose other side, as this agent recorded it, is that same node
//! ([`migration_peer`]); an id this agent does not know is answered as such
//! (`Unknown` / `Gone`), which tells the asker nothing.
//!
//! A refused request gets [`ErrorKind::Unauthorized`] and a warning in the
//! agent's log naming the peer's certificate (role, name) and address.
//! The match below has no catch-all on purpose: a new request variant does
//! not compile until it has a row here.

use herd_quic::{Identity, Role};
use herd_wire::handoff::Query;
use herd_wire::Request;

/// The name of a request in the table above (for logs and errors).
pub fn verb(req: &Request) -> &'static str {
    match req {
        Request::Ping => "Ping",
        Request::Run(_) => "Run",
        Request::List => "List",
        Request::Inspect { .. } => "Inspect",
        Request::Logs { .. } => "Logs",
        Request::Exec { .. } => "Exec",
        Request::Stop { .. } => "Stop",
        Request::Start { .. } => "Start",
        Request::Kill { .. } => "Kill",
        Request::Remove { .. } => "Remove",
        Request::ImageImport { .. } => "ImageImport",
        Request::ImageList => "ImageList",
        Request::ImageRemove { .. } => "ImageRemove",
        Request::Checkpoint { .. } => "Checkpoint",
        Request::Restore { .. } => "Restore",
        Request::RestoreImport { .. } => "RestoreImport",
        Request::Migrate { .. } => "Migrate",
        Request::MigrateIn(_) => "MigrateIn",
        Request::NetworkCreate(_) => "NetworkCreate",
        Request::NetworkList => "NetworkList",
        Request::NetworkRemove { .. } => "NetworkRemove",
        Request::Subscribe(_) => "Subscribe",
        Request::Handoff(_) => "Handoff",
        Request::MigratePages { .. } => "MigratePages",
    }
}

/// Who may send a request (one row of the table).
enum Who {
    Anyone,
    Users,
    Nodes,
}

fn who(req: &Request) -> Who {
    match req {
        Request::Ping | Request::Inspect { .. } => Who::Anyone,
        Request::MigrateIn(_) | Request::Handoff(_) | Request::MigratePages { .. } => Who::Nodes,
        Request::Run(_)
        | Request::List
        | Request::Logs { .. }
        | Request::Exec { .. }
        | Request::Stop { .. }
        | Request::Start { .. }
        | Request::Kill { .. }
        | Request::Remove { .. }
        | Request::ImageImport { .. }
        | Request::ImageList
        | Request::ImageRemove { .. }
        | Request::Checkpoint { .. }
        | Request::Restore { .. }
        | Request::RestoreImport { .. }
        | Request::Migrate { .. }
        | Request::NetworkCreate(_)
        | Request::NetworkList
        | Request::NetworkRemove { .. }
        | Request::Subscribe(_) => Who::Users,
    }
}

/// `Ok(())` when `peer` may send `req`; otherwise why not (for the
/// `Unauthorized` answer).
pub fn authorize(peer: &Identity, req: &Request) -> Result<(), String> {
    let allowed = match (who(req), peer.role) {
        (Who::Anyone, _) | (Who::Users, Role::User) | (Who::Nodes, Role::Node) => true,
        (Who::Users, Role::Node) | (Who::Nodes, Role::User) => false,
    };
    if !allowed {
        let needs = match who(req) {
            Who::Nodes => "only agents (node certificates) may send it",
            _ => "only users (user certificates) may send it; a node certificate is for agent-to-agent traffic",
        };
        return Err(format!(
            "{} is not allowed for certificate {peer}: {needs}",
            verb(req)
        ));
    }
    if let Request::MigrateIn(p) = req {
        claims_node(peer, &p.source_node)?;
    }
    Ok(())
}

/// A node may speak only for itself: `claimed` must be its certificate's name.
pub fn claims_node(peer: &Identity, claimed: &str) -> Result<(), String> {
    if peer.role == Role::Node && peer.name == claimed {
        Ok(())
    } else {
        Err(format!(
            "certificate {peer} claims to be node {claimed:?}; a node may only speak for itself"
        ))
    }
}

/// The migration a request names, if any.
pub fn migration_id(req: &Request) -> Option<&str> {
    match req {
        Request::Handoff(Query::Decide { id, .. } | Query::Forget { id }) => Some(id),
        Request::MigrateIn(p) => Some(&p.id),
        Request::MigratePages { id } => Some(id),
        _ => None,
    }
}

/// A node may act only on its own migrations: `recorded` is the node this
/// agent has migration `id` with (from its journal or its incoming side),
/// `None` when it knows no such migration.
pub fn migration_peer(peer: &Identity, id: &str, recorded: Option<&str>) -> Result<(), String> {
    match recorded {
        Some(other) if peer.role != Role::Node || other != peer.name => Err(format!(
            "certificate {peer} names migration {id:?}, which this agent has with node \
             {other:?}; a node may only act on its own migrations"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(role: Role, name: &str) -> Identity {
        Identity {
            name: name.into(),
            role,
        }
    }

    fn migrate_in(from: &str) -> Request {
        Request::MigrateIn(herd_wire::migrate::Prepare {
            version: herd_wire::migrate::MIGRATE_VERSION,
            spec: Default::default(),
            oci_spec: Vec::new(),
            image: String::new(),
            layers: Vec::new(),
            arch: String::new(),
            fs: herd_wire::migrate::FsMode::Diff,
            source_node: from.into(),
            id: "m1".into(),
            memory: herd_wire::migrate::MemoryMode::Stop,
        })
    }

    #[test]
    fn the_table_holds() {
        let user = id(Role::User, "alice");
        let n1 = id(Role::Node, "n1");
        for req in [Request::Ping, Request::Inspect { name: "c".into() }] {
            assert!(authorize(&user, &req).is_ok());
            assert!(authorize(&n1, &req).is_ok());
        }
        for req in [
            Request::List,
            Request::Run(Default::default()),
            Request::Exec {
                name: "c".into(),
                cmd: vec![],
                env: vec![],
                user: None,
                workdir: None,
            },
            Request::ImageList,
        ] {
            assert!(authorize(&user, &req).is_ok());
            let e = authorize(&n1, &req).unwrap_err();
            assert!(e.contains("node:n1") && e.contains(verb(&req)), "{e}");
        }
        let e = authorize(&user, &migrate_in("alice")).unwrap_err();
        assert!(e.contains("MigrateIn") && e.contains("user:alice"), "{e}");
        assert!(authorize(&n1, &migrate_in("n1")).is_ok());
        let e = authorize(&n1, &migrate_in("n2")).unwrap_err();
        assert!(e.contains("\"n2\"") && e.contains("node:n1"), "{e}");
    }

    #[test]
    fn a_node_acts_only_on_its_own_migrations() {
        let n1 = id(Role::Node, "n1");
        let n3 = id(Role::Node, "n3");
        let q = Request::Handoff(Query::Decide {
            id: "n1.c1.7".into(),
            decision: herd_wire::handoff::Decision::Go,
        });
        assert_eq!(migration_id(&q), Some("n1.c1.7"));
        assert_eq!(migration_id(&migrate_in("n1")), Some("m1"));
        assert_eq!(migration_id(&Request::List), None);
        assert!(migration_peer(&n1, "n1.c1.7", Some("n1")).is_ok());
        let e = migration_peer(&n3, "n1.c1.7", Some("n1")).unwrap_err();
        assert!(
            e.contains("node:n3") && e.contains("\"n1.c1.7\"") && e.contains("\"n1\""),
            "{e}"
        );
        // A user certificate named like the node is not that node.
        assert!(migration_peer(&id(Role::User, "n1"), "x", Some("n1")).is_err());
        // Unknown ids: the answer says so.
        assert!(migration_peer(&n3, "n1.c1.8", None).is_ok());
    }
}
