//! The handoff rules without a network: every edge of both machines, bad
//! and repeated messages, and a simulated world where links drop, answers
//! are lost, duplicated and reordered and either agent crashes between any
//! two actions and restarts from its journal.

use std::collections::VecDeque;

use super::*;
use crate::migrate::MigrateMsg as M;
use crate::{ContainerInfo, ContainerStatus, RestoreReport};

fn report() -> RestoreReport {
    RestoreReport {
        container: ContainerInfo {
            name: "c".into(),
            node: "t".into(),
            image: "busybox".into(),
            cmd: vec![],
            status: ContainerStatus::Running,
            pid: Some(7),
            exit_code: None,
            created_ns: 1,
            memory_bytes: None,
            cpus: None,
            hostname: "c".into(),
            network: None,
            ip: None,
            mac: None,
            migration: None,
            volumes: vec![],
        },
        total_ms: 1.0,
        criu_restore_ms: 1.0,
        pages_restored: 1,
        running_ms: 0.0,
    }
}

fn file(path: &str, data: &[u8]) -> Vec<M> {
    vec![
        M::File { path: path.into() },
        M::Data {
            zstd: false,
            bytes: data.to_vec(),
        },
        M::FileEnd {
            size: data.len() as u64,
            sha256: sha256_hex(data),
        },
    ]
}

fn ans(m: TargetMsg) -> SEvent {
    SEvent::Answer(m)
}

fn decide(d: Decision) -> SAction {
    SAction::Query(Query::Decide {
        id: "m1".into(),
        decision: d,
    })
}

fn finish_outcome(acts: &[SAction]) -> Option<Outcome> {
    acts.iter().find_map(|a| match a {
        SAction::Finish { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

// ------------------------------------------------------------ sender edges

fn sender_at(events: &[SEvent]) -> Sender {
    let mut s = Sender::new("m1".into());
    for e in events {
        s.handle(e.clone()).expect("path to the state");
    }
    s
}

const BUILT: fn() -> SEvent = || ans(TargetMsg::Built);

const PREPARED: fn() -> SEvent = || {
    ans(TargetMsg::Prepared {
        need_layers: vec![],
    })
};

fn to_await_ready() -> Vec<SEvent> {
    vec![
        PREPARED(),
        SEvent::PreSent,
        BUILT(),
        SEvent::Dumped,
        SEvent::Transferred,
    ]
}

#[test]
fn sender_happy_path_journals_go_before_sending_it() {
    let mut s = Sender::new("m1".into());
    assert_eq!(s.handle(PREPARED()).unwrap(), vec![SAction::PreSend]);
    // Nothing freezes until T has built the container.
    assert_eq!(
        s.handle(SEvent::PreSent).unwrap(),
        vec![SAction::Send(M::PreSent)]
    );
    assert!(!s.frozen());
    assert_eq!(s.phase(), Phase::PreSend);
    assert_eq!(
        s.handle(BUILT()).unwrap(),
        vec![SAction::Journal(Step::Dumping), SAction::Dump]
    );
    assert!(s.frozen());
    assert_eq!(s.handle(SEvent::Dumped).unwrap(), vec![SAction::Transfer]);
    assert_eq!(
        s.handle(SEvent::Transferred).unwrap(),
        vec![SAction::Journal(Step::Committed), SAction::Send(M::Commit)]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap(),
        vec![
            SAction::Journal(Step::Decided(Decision::Go)),
            SAction::Send(M::Go)
        ]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Running)).unwrap(),
        vec![SAction::DeleteOwn]
    );
    let done = s.handle(SEvent::OwnDeleted).unwrap();
    assert_eq!(done[0], SAction::Unjournal);
    assert_eq!(done[1], SAction::Query(Query::Forget { id: "m1".into() }));
    assert_eq!(
        done[2],
        SAction::Finish {
            outcome: Outcome::Moved,
            phase: None,
            reason: None
        }
    );
    assert_eq!(s.state(), SState::Done(Outcome::Moved));
}

#[test]
fn sender_sends_missing_layers_first() {
    let mut s = Sender::new("m1".into());
    let need = vec!["sha256:aa".to_string()];
    assert_eq!(
        s.handle(ans(TargetMsg::Prepared {
            need_layers: need.clone()
        }))
        .unwrap(),
        vec![SAction::SendImage(need)]
    );
    assert_eq!(s.handle(SEvent::ImageSent).unwrap(), vec![SAction::PreSend]);
    // A link lost while sending the image changes nothing.
    let mut s = sender_at(&[ans(TargetMsg::Prepared {
        need_layers: vec!["x".into()],
    })]);
    let a = s.handle(SEvent::LinkLost("gone".into())).unwrap();
    assert_eq!(finish_outcome(&a), Some(Outcome::Untouched));
    assert!(
        matches!(&a[0], SAction::Finish { phase: Some(Phase::Image), reason: Some(r), .. } if r == "gone")
    );
}

#[test]
fn sender_failures_before_the_dump_leave_it_untouched_without_a_journal() {
    for (pre, ev, phase) in [
        (vec![], ans(TargetMsg::Refused("no".into())), Phase::Prepare),
        (vec![], SEvent::LinkLost("x".into()), Phase::Prepare),
        (
            vec![PREPARED()],
            SEvent::LinkLost("x".into()),
            Phase::PreSend,
        ),
        (
            vec![PREPARED()],
            ans(TargetMsg::Failed("disk".into())),
            Phase::PreSend,
        ),
        (
            vec![PREPARED(), SEvent::PreSent],
            ans(TargetMsg::Failed("netns".into())),
            Phase::PreSend,
        ),
        (
            vec![PREPARED(), SEvent::PreSent],
            SEvent::LinkLost("x".into()),
            Phase::PreSend,
        ),
    ] {
        let mut s = sender_at(&pre);
        let a = s.handle(ev).unwrap();
        assert!(
            a.iter()
                .all(|a| !matches!(a, SAction::Journal(_) | SAction::Dump)),
            "{a:?}"
        );
        assert!(
            matches!(&a[..], [SAction::Finish { outcome: Outcome::Untouched, phase: Some(p), .. }] if *p == phase),
            "{a:?}"
        );
    }
}

#[test]
fn sender_failed_dump_unjournals_and_is_untouched() {
    let mut s = sender_at(&[PREPARED(), SEvent::PreSent, BUILT()]);
    let a = s.handle(SEvent::DumpFailed("criu died".into())).unwrap();
    assert_eq!(a[0], SAction::Send(M::Abort));
    assert_eq!(a[1], SAction::Unjournal);
    assert!(
        matches!(&a[2], SAction::Finish { outcome: Outcome::Untouched, phase: Some(Phase::Dump), reason: Some(r) } if r == "criu died")
    );
}

#[test]
fn sender_link_lost_before_commit_resumes_at_once() {
    // During the dump: the dump ends first, then S resumes (no Commit sent).
    let mut s = sender_at(&[PREPARED(), SEvent::PreSent, BUILT()]);
    assert_eq!(s.handle(SEvent::LinkLost("cut".into())).unwrap(), vec![]);
    assert_eq!(s.handle(SEvent::Dumped).unwrap(), vec![SAction::Transfer]);
    assert_eq!(
        s.handle(SEvent::Transferred).unwrap(),
        vec![SAction::Send(M::Abort), SAction::RestoreOwn]
    );
    // Mid-transfer.
    let mut s = sender_at(&[PREPARED(), SEvent::PreSent, BUILT(), SEvent::Dumped]);
    assert_eq!(
        s.handle(SEvent::LinkLost("cut".into())).unwrap(),
        vec![SAction::Send(M::Abort), SAction::RestoreOwn]
    );
    let a = s.handle(SEvent::OwnRestored).unwrap();
    assert_eq!(a[0], SAction::Unjournal);
    assert!(
        matches!(
            &a[1],
            SAction::Finish {
                outcome: Outcome::RolledBack,
                phase: Some(Phase::Transfer),
                ..
            }
        ),
        "{a:?}"
    );
}

#[test]
fn sender_after_commit_never_restores_without_the_targets_word() {
    // Link lost while awaiting the vote: decide Abort (journalled), ask,
    // and wait for T's answer before resuming.
    let mut s = sender_at(&to_await_ready());
    let a = s.handle(SEvent::LinkLost("cut".into())).unwrap();
    assert_eq!(
        a,
        vec![
            SAction::Journal(Step::Decided(Decision::Abort)),
            decide(Decision::Abort)
        ]
    );
    // Unanswered: ask again, forever; no RestoreOwn.
    for _ in 0..3 {
        assert_eq!(
            s.handle(SEvent::LinkLost("still".into())).unwrap(),
            vec![decide(Decision::Abort)]
        );
        assert_eq!(
            s.handle(ans(TargetMsg::Busy)).unwrap(),
            vec![decide(Decision::Abort)]
        );
    }
    // A late Ready after the decision is refused: no Go.
    assert!(s.handle(ans(TargetMsg::Ready(Box::new(report())))).is_err());
    assert!(s.handle(ans(TargetMsg::Running)).is_err());
    assert_eq!(
        s.handle(ans(TargetMsg::Gone)).unwrap(),
        vec![SAction::RestoreOwn]
    );
    let a = s.handle(SEvent::OwnRestored).unwrap();
    assert_eq!(a[0], SAction::Unjournal);
    assert_eq!(finish_outcome(&a), Some(Outcome::RolledBack));
}

#[test]
fn sender_journals_commit_before_sending_it() {
    let mut s = sender_at(&[PREPARED(), SEvent::PreSent, BUILT(), SEvent::Dumped]);
    assert_eq!(
        s.handle(SEvent::Transferred).unwrap(),
        vec![SAction::Journal(Step::Committed), SAction::Send(M::Commit)]
    );
}

#[test]
fn sender_target_failure_before_its_vote_rolls_back_at_once() {
    let mut s = sender_at(&to_await_ready());
    assert_eq!(
        s.handle(ans(TargetMsg::Failed("restore failed".into())))
            .unwrap(),
        vec![SAction::RestoreOwn]
    );
    let a = s.handle(SEvent::OwnRestoreFailed("criu".into())).unwrap();
    match &a[1] {
        SAction::Finish {
            outcome: Outcome::RolledBack,
            phase: Some(Phase::Restore),
            reason: Some(r),
        } => assert!(r.contains("restore failed") && r.contains("criu"), "{r}"),
        x => panic!("{x:?}"),
    }
}

#[test]
fn sender_after_go_never_restores_its_copy() {
    let mut s = sender_at(&to_await_ready());
    s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap();
    assert_eq!(
        s.handle(SEvent::LinkLost("cut".into())).unwrap(),
        vec![decide(Decision::Go)]
    );
    for ev in [
        ans(TargetMsg::Gone),
        ans(TargetMsg::Failed("x".into())),
        ans(TargetMsg::Unknown),
        ans(TargetMsg::Ready(Box::new(report()))),
        SEvent::OwnRestored,
    ] {
        let before = s.state();
        assert!(s.handle(ev.clone()).is_err(), "{ev:?} accepted after Go");
        assert_eq!(s.state(), before);
    }
    assert_eq!(
        s.handle(ans(TargetMsg::Busy)).unwrap(),
        vec![decide(Decision::Go)]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Running)).unwrap(),
        vec![SAction::DeleteOwn]
    );
}

#[test]
fn sender_duplicated_and_reordered_answers_change_nothing() {
    let mut s = sender_at(&to_await_ready());
    s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap();
    // The same Ready again: no second Go, no second journal record.
    assert!(s.handle(ans(TargetMsg::Ready(Box::new(report())))).is_err());
    s.handle(ans(TargetMsg::Running)).unwrap();
    assert!(s.handle(ans(TargetMsg::Running)).is_err());
    s.handle(SEvent::OwnDeleted).unwrap();
    assert!(s.handle(SEvent::OwnDeleted).is_err());
    // Answers out of order: Running before Ready is refused.
    let mut s = sender_at(&to_await_ready());
    assert!(s.handle(ans(TargetMsg::Running)).is_err());
    assert_eq!(s.state(), SState::AwaitReady);
    // Prepared twice.
    let mut s = sender_at(&[PREPARED()]);
    assert!(s.handle(PREPARED()).is_err());
}

#[test]
fn sender_recovers_from_every_journal_step() {
    let (s, a) = Sender::recover("m1".into(), Step::Dumping);
    assert_eq!(s.state(), SState::RestoringOwn);
    assert_eq!(a, vec![SAction::RestoreOwn]);
    let (s, a) = Sender::recover("m1".into(), Step::Committed);
    assert_eq!(s.state(), SState::Resolving(Decision::Abort));
    assert_eq!(
        a,
        vec![
            SAction::Journal(Step::Decided(Decision::Abort)),
            decide(Decision::Abort)
        ]
    );
    let (s, a) = Sender::recover("m1".into(), Step::Decided(Decision::Abort));
    assert_eq!(s.state(), SState::Resolving(Decision::Abort));
    assert_eq!(a, vec![decide(Decision::Abort)]);
    let (s, a) = Sender::recover("m1".into(), Step::Decided(Decision::Go));
    assert_eq!(s.state(), SState::Resolving(Decision::Go));
    assert_eq!(a, vec![decide(Decision::Go)]);
}

/// Every (state, event) pair: an event refused leaves the state as it was
/// and asks for nothing; an accepted one never restores the own copy
/// after Go, and never sends Go without journalling it first.
#[test]
fn sender_every_edge_is_safe() {
    let paths: Vec<Vec<SEvent>> = vec![
        vec![],
        vec![ans(TargetMsg::Prepared {
            need_layers: vec!["l".into()],
        })],
        vec![PREPARED()],
        vec![PREPARED(), SEvent::PreSent],
        vec![PREPARED(), SEvent::PreSent, BUILT()],
        vec![PREPARED(), SEvent::PreSent, BUILT(), SEvent::Dumped],
        to_await_ready(),
        [
            to_await_ready(),
            vec![ans(TargetMsg::Ready(Box::new(report())))],
        ]
        .concat(),
        [
            to_await_ready(),
            vec![
                ans(TargetMsg::Ready(Box::new(report()))),
                SEvent::LinkLost("x".into()),
            ],
        ]
        .concat(),
        [to_await_ready(), vec![SEvent::LinkLost("x".into())]].concat(),
        [
            to_await_ready(),
            vec![
                ans(TargetMsg::Ready(Box::new(report()))),
                ans(TargetMsg::Running),
            ],
        ]
        .concat(),
        [to_await_ready(), vec![ans(TargetMsg::Failed("f".into()))]].concat(),
    ];
    let events = vec![
        PREPARED(),
        ans(TargetMsg::Prepared {
            need_layers: vec!["l".into()],
        }),
        ans(TargetMsg::Refused("r".into())),
        BUILT(),
        ans(TargetMsg::Ready(Box::new(report()))),
        ans(TargetMsg::Failed("f".into())),
        ans(TargetMsg::Running),
        ans(TargetMsg::Gone),
        ans(TargetMsg::Busy),
        ans(TargetMsg::Unknown),
        SEvent::ImageSent,
        SEvent::PreSent,
        SEvent::Dumped,
        SEvent::DumpFailed("d".into()),
        SEvent::Transferred,
        SEvent::LinkLost("l".into()),
        SEvent::OwnRestored,
        SEvent::OwnRestoreFailed("o".into()),
        SEvent::OwnDeleted,
    ];
    let mut accepted = 0;
    for p in &paths {
        for ev in &events {
            let mut s = sender_at(p);
            let before = s.state();
            let went = matches!(
                before,
                SState::Going | SState::Resolving(Decision::Go) | SState::Cleaning
            );
            match s.handle(ev.clone()) {
                Err(_) => assert_eq!(s.state(), before, "{ev:?} in {before:?}"),
                Ok(acts) => {
                    accepted += 1;
                    if went {
                        assert!(
                            !acts.contains(&SAction::RestoreOwn),
                            "{ev:?} in {before:?}: {acts:?}"
                        );
                    }
                    if let Some(i) = acts.iter().position(|a| *a == SAction::Send(M::Go)) {
                        assert!(
                            acts[..i].contains(&SAction::Journal(Step::Decided(Decision::Go))),
                            "{ev:?} in {before:?}: Go not journalled first: {acts:?}"
                        );
                    }
                    if let Some(i) = acts.iter().position(|a| *a == SAction::Dump) {
                        assert!(acts[..i].contains(&SAction::Journal(Step::Dumping)));
                    }
                    if let Some(i) = acts.iter().position(|a| *a == SAction::Send(M::Commit)) {
                        assert!(acts[..i].contains(&SAction::Journal(Step::Committed)));
                    }
                }
            }
        }
    }
    assert!(accepted > 20, "only {accepted} edges accepted");
}

// ---------------------------------------------------------- receiver edges

fn staged(r: &mut Receiver, msgs: Vec<M>) -> Vec<RAction> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend(r.handle(REvent::Msg(m)).expect("accepted"));
    }
    out
}

/// The pre-send ended and T built the container.
fn build(r: &mut Receiver) {
    assert_eq!(
        r.handle(REvent::Msg(M::PreSent)).unwrap(),
        vec![RAction::Build]
    );
    assert_eq!(
        r.handle(REvent::Built).unwrap(),
        vec![RAction::Reply(TargetMsg::Built)]
    );
}

fn receiver_ready() -> Receiver {
    let mut r = Receiver::new("m1".into());
    build(&mut r);
    staged(
        &mut r,
        [file("config.json", b"{}"), vec![M::Commit]].concat(),
    );
    r.handle(REvent::Restored(Box::new(report()))).unwrap();
    r
}

#[test]
fn receiver_happy_path_votes_after_journalling_and_runs_only_on_go() {
    let mut r = Receiver::new("m1".into());
    let a = staged(&mut r, file("checkpoint/pages-1.img", b"abc"));
    assert_eq!(
        a,
        vec![
            RAction::Create("checkpoint/pages-1.img".into()),
            RAction::Write(b"abc".to_vec()),
            RAction::Close
        ]
    );
    build(&mut r);
    staged(&mut r, file("config.json", b"{}"));
    assert_eq!(
        r.handle(REvent::Msg(M::Commit)).unwrap(),
        vec![RAction::Journal(Step::Restoring), RAction::RestoreFenced]
    );
    assert_eq!(
        r.handle(REvent::Restored(Box::new(report()))).unwrap(),
        vec![
            RAction::Journal(Step::Ready),
            RAction::Reply(TargetMsg::Ready(Box::new(report())))
        ]
    );
    // The link dies: it waits, frozen and fenced.
    assert_eq!(r.handle(REvent::LinkLost).unwrap(), vec![]);
    assert_eq!(r.state(), RState::Ready);
    assert_eq!(
        r.handle(REvent::Msg(M::Go)).unwrap(),
        vec![
            RAction::Journal(Step::Running),
            RAction::Thaw,
            RAction::Reply(TargetMsg::Running)
        ]
    );
    // Go again (S lost the answer): the same answer, nothing done twice.
    assert_eq!(
        r.handle(REvent::Decide(Decision::Go)).unwrap(),
        vec![RAction::Reply(TargetMsg::Running)]
    );
    assert!(r.handle(REvent::Decide(Decision::Abort)).is_err());
    assert_eq!(r.handle(REvent::Forget).unwrap(), vec![RAction::Unjournal]);
    assert_eq!(
        r.handle(REvent::Decide(Decision::Go)).unwrap(),
        vec![RAction::Reply(TargetMsg::Unknown)]
    );
}

#[test]
fn receiver_refuses_bad_files_and_discards() {
    let bad: Vec<Vec<M>> = vec![
        vec![M::File {
            path: "../etc/passwd".into(),
        }],
        vec![M::File {
            path: "checkpoint/../x".into(),
        }],
        vec![M::File {
            path: "layer/sha256:zz".into(),
        }],
        vec![M::File {
            path: "/abs".into(),
        }],
        vec![M::Data {
            zstd: false,
            bytes: vec![1],
        }],
        vec![M::FileEnd {
            size: 0,
            sha256: String::new(),
        }],
        vec![
            M::File { path: "log".into() },
            M::File {
                path: "config.json".into(),
            },
        ],
        vec![
            M::File { path: "log".into() },
            M::Data {
                zstd: false,
                bytes: vec![0; CHUNK + 1],
            },
        ],
        vec![
            M::File { path: "log".into() },
            M::Data {
                zstd: false,
                bytes: b"abc".to_vec(),
            },
            M::FileEnd {
                size: 3,
                sha256: sha256_hex(b"abd"),
            },
        ],
        vec![
            M::File { path: "log".into() },
            M::Data {
                zstd: false,
                bytes: b"abc".to_vec(),
            },
            M::FileEnd {
                size: 4,
                sha256: sha256_hex(b"abc"),
            },
        ],
        [file("log", b"1"), file("log", b"1")].concat(),
        [vec![M::File { path: "log".into() }], vec![M::Commit]].concat(),
        vec![M::Commit], // no config.json
        // Commit before the build, a second pre-send end.
        [file("config.json", b"{}"), vec![M::Commit]].concat(),
        vec![M::PreSent, M::PreSent],
        [vec![M::File { path: "log".into() }], vec![M::PreSent]].concat(),
    ];
    for msgs in bad {
        let mut r = Receiver::new("m1".into());
        let mut last = Vec::new();
        for m in msgs.clone() {
            last = r.handle(REvent::Msg(m)).expect("handled");
            if r.state() == RState::Gone {
                break;
            }
        }
        assert_eq!(r.state(), RState::Gone, "{msgs:?}");
        assert_eq!(last[0], RAction::Discard, "{msgs:?}");
        assert!(
            matches!(last.last(), Some(RAction::Reply(TargetMsg::Failed(_)))),
            "{last:?}"
        );
        // Nothing more is taken, and Go is never applied.
        assert!(r.handle(REvent::Msg(M::Commit)).is_err());
        assert_eq!(
            r.handle(REvent::Decide(Decision::Go)).unwrap(),
            vec![RAction::Reply(TargetMsg::Unknown)]
        );
    }
    for ok in [
        "upper.tar",
        "upper-delta.tar",
        "whole.tar",
        "config.json",
        "log",
        "image.json",
        "checkpoint/core-1.img",
    ] {
        assert!(allowed_path(ok), "{ok}");
    }
    assert!(allowed_path(&format!("layer/sha256:{}", "ab".repeat(32))));
}

#[test]
fn receiver_go_before_the_vote_is_refused() {
    let mut r = Receiver::new("m1".into());
    assert!(r.handle(REvent::Msg(M::Go)).is_err());
    build(&mut r);
    staged(
        &mut r,
        [file("config.json", b"{}"), vec![M::Commit]].concat(),
    );
    assert!(r.handle(REvent::Decide(Decision::Go)).is_err());
    assert_eq!(r.state(), RState::Restoring);
}

#[test]
fn receiver_abort_in_every_state() {
    // Staging: dropped at once.
    let mut r = Receiver::new("m1".into());
    staged(&mut r, file("log", b"x"));
    assert_eq!(
        r.handle(REvent::Decide(Decision::Abort)).unwrap(),
        vec![RAction::Discard, RAction::Reply(TargetMsg::Gone)]
    );
    // Restoring: remembered, Busy; dropped when the restore ends, never voted.
    let mut r = Receiver::new("m1".into());
    build(&mut r);
    staged(
        &mut r,
        [file("config.json", b"{}"), vec![M::Commit]].concat(),
    );
    assert_eq!(
        r.handle(REvent::Decide(Decision::Abort)).unwrap(),
        vec![RAction::Reply(TargetMsg::Busy)]
    );
    assert_eq!(
        r.handle(REvent::Restored(Box::new(report()))).unwrap(),
        vec![RAction::Discard, RAction::Unjournal]
    );
    assert_eq!(
        r.handle(REvent::Decide(Decision::Abort)).unwrap(),
        vec![RAction::Reply(TargetMsg::Gone)]
    );
    // Ready: dropped, then Gone for every repeat.
    let mut r = receiver_ready();
    assert_eq!(
        r.handle(REvent::Msg(M::Abort)).unwrap(),
        vec![
            RAction::Discard,
            RAction::Unjournal,
            RAction::Reply(TargetMsg::Gone)
        ]
    );
    assert_eq!(
        r.handle(REvent::Decide(Decision::Abort)).unwrap(),
        vec![RAction::Reply(TargetMsg::Gone)]
    );
    assert_eq!(
        r.handle(REvent::Decide(Decision::Go)).unwrap(),
        vec![RAction::Reply(TargetMsg::Unknown)]
    );
    // A failed restore: discarded and reported.
    let mut r = Receiver::new("m1".into());
    build(&mut r);
    staged(
        &mut r,
        [file("config.json", b"{}"), vec![M::Commit]].concat(),
    );
    assert_eq!(
        r.handle(REvent::RestoreFailed("criu".into())).unwrap(),
        vec![
            RAction::Discard,
            RAction::Unjournal,
            RAction::Reply(TargetMsg::Failed("criu".into()))
        ]
    );
    // A local failure before the vote (disk full): dropped and reported;
    // after the vote it is refused (the copy waits for S).
    let mut r = Receiver::new("m1".into());
    staged(&mut r, vec![M::File { path: "log".into() }]);
    assert_eq!(
        r.handle(REvent::LocalFailure("disk full".into())).unwrap(),
        vec![
            RAction::Discard,
            RAction::Reply(TargetMsg::Failed("disk full".into()))
        ]
    );
    let mut r = receiver_ready();
    assert!(r.handle(REvent::LocalFailure("x".into())).is_err());
    assert_eq!(r.state(), RState::Ready);
    // Unknown id.
    assert_eq!(Receiver::unknown(Decision::Abort), TargetMsg::Gone);
    assert_eq!(Receiver::unknown(Decision::Go), TargetMsg::Unknown);
}

#[test]
fn receiver_recovers_from_every_journal_step() {
    let (r, a) = Receiver::recover("m1".into(), Step::Restoring);
    assert_eq!(r.state(), RState::Gone);
    assert_eq!(a, vec![RAction::Discard, RAction::Unjournal]);
    let (r, a) = Receiver::recover("m1".into(), Step::Ready);
    assert_eq!(r.state(), RState::Ready);
    assert!(a.is_empty());
    let (r, a) = Receiver::recover("m1".into(), Step::Running);
    assert_eq!(r.state(), RState::Running);
    assert_eq!(a, vec![RAction::Thaw]);
}

#[test]
fn version_refusal_names_both_versions() {
    assert!(check_version(MIGRATE_VERSION).is_ok());
    let e = check_version(1).unwrap_err();
    assert!(e.contains("version 1"), "{e}");
    assert!(e.contains(&format!("version {MIGRATE_VERSION}")), "{e}");
}

#[test]
fn ids_are_plain_tokens() {
    assert!(valid_id("n1.c.1764581234000000000"));
    for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(201)] {
        assert!(!valid_id(bad), "{bad:?}");
    }
}

#[test]
fn outcome_and_phase_names_in_json_form() {
    assert_eq!(Outcome::RolledBack.as_str(), "rolled_back");
    assert_eq!(Phase::PreSend.as_str(), "pre-send");
}

// ------------------------------------------------------- simulated world

/// Minimal deterministic generator (no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SCopy {
    Running,
    Frozen,
    Resumed,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TCopy {
    None,
    Staged,
    Stopped,
    Running,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Stream,
    Query,
    Local,
}

struct World {
    rng: Rng,
    faults: bool,
    /// `--memory-mode stream`: S's copy is the tree CRIU holds.
    streamed: bool,
    /// `--memory-mode pre`: rounds of pre-dumps before that.
    pre: bool,
    /// `pre`: pages the next pre-dump writes (shrinking).
    pre_pages: u64,
    s: Option<Sender>,
    s_journal: Option<Step>,
    s_copy: SCopy,
    s_todo: VecDeque<SAction>,
    s_events: VecDeque<SEvent>,
    outcome: Option<Outcome>,
    t: Option<Receiver>,
    t_journal: Option<Step>,
    t_copy: TCopy,
    /// T forgot a migration whose copy runs (S's `Forget` after Go).
    t_forgotten: bool,
    t_todo: VecDeque<(RAction, Via)>,
    t_events: VecDeque<(REvent, Via)>,
    stream_alive: bool,
    to_t: VecDeque<M>,
    to_s: VecDeque<TargetMsg>,
    queries: Vec<Query>,
    answers: Vec<TargetMsg>,
    link_up: bool,
    trace: Vec<String>,
}

impl World {
    fn new(seed: u64, streamed: bool, pre: bool) -> World {
        let (s, t) = if pre {
            (
                Sender::new("m1".into()).pre_copy(),
                Receiver::new("m1".into()).pre_copy(),
            )
        } else if streamed {
            (
                Sender::new("m1".into()).streaming(),
                Receiver::new("m1".into()).streaming(),
            )
        } else {
            (Sender::new("m1".into()), Receiver::new("m1".into()))
        };
        let mut w = World {
            rng: Rng(seed),
            faults: true,
            streamed: streamed || pre,
            pre,
            pre_pages: 2_000,
            s: Some(s),
            s_journal: None,
            s_copy: SCopy::Running,
            s_todo: VecDeque::new(),
            s_events: VecDeque::new(),
            outcome: None,
            t: Some(t),
            t_journal: None,
            t_copy: TCopy::None,
            t_forgotten: false,
            t_todo: VecDeque::new(),
            t_events: VecDeque::new(),
            stream_alive: true,
            to_t: VecDeque::new(),
            to_s: VecDeque::new(),
            queries: Vec::new(),
            answers: Vec::new(),
            link_up: true,
            trace: Vec::new(),
        };
        // The Prepare reached T and was accepted.
        w.to_s.push_back(TargetMsg::Prepared {
            need_layers: vec![],
        });
        w
    }

    fn running(&self) -> usize {
        usize::from(matches!(self.s_copy, SCopy::Running | SCopy::Resumed))
            + usize::from(self.t_copy == TCopy::Running)
    }

    fn kill_stream(&mut self) {
        if self.stream_alive {
            self.stream_alive = false;
            // What was sent may still arrive before the reset, or not.
            if self.rng.chance(50) {
                for m in std::mem::take(&mut self.to_t) {
                    self.t_events.push_back((REvent::Msg(m), Via::Stream));
                }
            }
            self.to_t.clear();
            self.to_s.clear();
            self.s_events.push_back(SEvent::LinkLost("stream".into()));
            self.t_events.push_back((REvent::LinkLost, Via::Local));
        }
    }

    fn s_feed(&mut self, ev: SEvent) {
        if let Some(s) = &mut self.s {
            if let Ok(a) = s.handle(ev) {
                self.s_todo.extend(a);
            }
        }
    }

    fn t_feed(&mut self, ev: REvent, via: Via) {
        match &mut self.t {
            Some(t) => {
                if let Ok(a) = t.handle(ev) {
                    self.t_todo.extend(a.into_iter().map(|x| (x, via)));
                }
            }
            None => {
                // No record of the id on T (restarted before Restoring).
                if let REvent::Decide(d) = ev {
                    self.t_todo
                        .push_back((RAction::Reply(Receiver::unknown(d)), via));
                }
            }
        }
    }

    fn s_do(&mut self, a: SAction) {
        match a {
            SAction::SendImage(_) => self.s_events.push_back(SEvent::ImageSent),
            SAction::PreSend => {
                if self.stream_alive {
                    self.to_t.extend(file("upper.tar", b"u"));
                    self.s_events.push_back(SEvent::PreSent);
                } else {
                    self.s_events.push_back(SEvent::LinkLost("presend".into()));
                }
            }
            SAction::Journal(st) => self.s_journal = Some(st),
            SAction::Unjournal => self.s_journal = None,
            SAction::Dump => {
                if self.faults && self.rng.chance(5) {
                    self.s_events.push_back(SEvent::DumpFailed("criu".into()));
                } else {
                    self.s_copy = SCopy::Frozen;
                    self.s_events.push_back(SEvent::Dumped);
                    if self.streamed && self.stream_alive {
                        // The page session ended well on T.
                        self.t_events.push_back((REvent::PagesIn, Via::Stream));
                    }
                }
            }
            SAction::PreDump(_) => {
                // X runs throughout; only its pages cross.
                if (self.faults && self.rng.chance(5)) || !self.stream_alive {
                    self.s_events
                        .push_back(SEvent::PreDumpFailed("criu".into()));
                } else {
                    self.pre_pages /= 1 + self.rng.below(4) as u64;
                    self.s_events.push_back(SEvent::PreDumped {
                        pages: self.pre_pages,
                    });
                    self.t_events.push_back((REvent::PagesIn, Via::Stream));
                }
            }
            SAction::Release => {
                assert_eq!(self.s_copy, SCopy::Frozen, "{:#?}", self.trace);
                if self.faults && self.rng.chance(5) {
                    self.s_copy = SCopy::Resumed;
                    self.s_events
                        .push_back(SEvent::ReleaseFailed("criu".into()));
                } else {
                    self.s_copy = SCopy::Deleted;
                    self.s_events.push_back(SEvent::Released);
                }
            }
            SAction::CheckOwn => {
                let alive = matches!(self.s_copy, SCopy::Running | SCopy::Resumed);
                self.s_events.push_back(SEvent::OwnAlive(alive));
            }
            SAction::Transfer => {
                if self.stream_alive {
                    self.to_t.extend(file("checkpoint/core-1.img", b"c"));
                    self.to_t.extend(file("config.json", b"{}"));
                    self.s_events.push_back(SEvent::Transferred);
                } else {
                    self.s_events.push_back(SEvent::LinkLost("transfer".into()));
                }
            }
            SAction::Send(m) => {
                if self.stream_alive {
                    self.to_t.push_back(m);
                } else {
                    self.s_events.push_back(SEvent::LinkLost("send".into()));
                }
            }
            SAction::Query(q) => self.queries.push(q),
            SAction::RestoreOwn => {
                // (A local restore failure is not the protocol's: the
                // agent retries it; see the agent's driver.)
                // Idempotent: a restart may ask for it again, or the
                // journal was written but the dump never began (the
                // container still runs: nothing to restore).
                assert_ne!(self.s_copy, SCopy::Deleted, "{:#?}", self.trace);
                if self.s_copy == SCopy::Frozen {
                    self.s_copy = SCopy::Resumed;
                }
                self.s_events.push_back(SEvent::OwnRestored);
            }
            SAction::DeleteOwn => {
                self.s_copy = SCopy::Deleted;
                self.s_events.push_back(SEvent::OwnDeleted);
            }
            SAction::Finish { outcome, .. } => {
                // The driver drops the migration's connection at the end.
                self.outcome = Some(outcome);
                self.kill_stream();
            }
        }
    }

    fn t_do(&mut self, a: RAction, via: Via) {
        match a {
            RAction::Create(_) | RAction::Write(_) | RAction::Close => {
                if self.t_copy == TCopy::None {
                    self.t_copy = TCopy::Staged;
                }
            }
            RAction::Journal(st) => self.t_journal = Some(st),
            RAction::Unjournal => {
                // Forgotten after Go: an ordinary container from now on.
                self.t_forgotten = self.t_copy == TCopy::Running;
                self.t_journal = None
            }
            RAction::Build => {
                if self.faults && self.rng.chance(5) {
                    self.t_events
                        .push_back((REvent::LocalFailure("netns".into()), Via::Stream));
                } else {
                    if self.t_copy == TCopy::None {
                        self.t_copy = TCopy::Staged;
                    }
                    self.t_events.push_back((REvent::Built, Via::Stream));
                }
            }
            RAction::StartPages { .. } => {
                if self.faults && self.rng.chance(5) {
                    self.t_events
                        .push_back((REvent::LocalFailure("criu".into()), Via::Stream));
                } else {
                    if self.t_copy == TCopy::None {
                        self.t_copy = TCopy::Staged;
                    }
                    self.t_events.push_back((REvent::PagesReady, Via::Stream));
                }
            }
            RAction::RestoreFenced => {
                if self.faults && self.rng.chance(5) {
                    self.t_events
                        .push_back((REvent::RestoreFailed("criu".into()), Via::Stream));
                } else {
                    self.t_copy = TCopy::Stopped;
                    self.t_events
                        .push_back((REvent::Restored(Box::new(report())), Via::Stream));
                }
            }
            RAction::Thaw => {
                assert_ne!(self.t_copy, TCopy::None, "{:#?}", self.trace);
                self.t_copy = TCopy::Running;
            }
            RAction::Discard => {
                assert_ne!(self.t_copy, TCopy::Running, "{:#?}", self.trace);
                self.t_copy = TCopy::None;
            }
            RAction::Reply(m) => match via {
                Via::Stream => {
                    if self.stream_alive {
                        self.to_s.push_back(m)
                    }
                }
                Via::Query => self.answers.push(m),
                Via::Local => {}
            },
        }
    }

    fn crash_s(&mut self) {
        self.trace.push("crash S".into());
        self.kill_stream();
        // Queries and answers in flight stay: they may reach the new one.
        self.s_todo.clear();
        self.s_events.clear();
        self.s = None;
        if self.streamed && self.s_copy == SCopy::Frozen {
            // CRIU's post-dump notify sees its caller gone: it resumes.
            self.s_copy = SCopy::Resumed;
        }
        // Restart: the journal decides.
        if let Some(st) = self.s_journal {
            let (s, a) = Sender::recover("m1".into(), st);
            self.s = Some(s);
            self.s_todo.extend(a);
        }
    }

    fn crash_t(&mut self) {
        self.trace.push("crash T".into());
        self.kill_stream();
        if self.t_todo.iter().any(|(_, v)| *v == Via::Query) {
            // The query being served dies with T: S times out.
            self.s_events.push_back(SEvent::LinkLost("query".into()));
        }
        self.t_todo.clear();
        self.t_events.clear();
        self.t = None;
        match self.t_journal {
            Some(st) => {
                let (t, a) = Receiver::recover("m1".into(), st);
                self.t = Some(t);
                self.t_todo.extend(a.into_iter().map(|x| (x, Via::Local)));
            }
            None if self.t_forgotten => {}
            None => {
                // Stale staging dirs are removed at start-up.
                assert_ne!(self.t_copy, TCopy::Running);
                assert_ne!(
                    self.t_copy,
                    TCopy::Stopped,
                    "stopped copy without a journal"
                );
                self.t_copy = TCopy::None;
            }
        }
        if self.s_copy == SCopy::Running && self.s_journal.is_none() {
            // Nothing to resolve.
        }
    }

    /// One step; false when nothing is left to do.
    fn step(&mut self) -> bool {
        let mut choices: Vec<u8> = Vec::new();
        if !self.s_todo.is_empty() {
            choices.push(0);
        }
        if !self.t_todo.is_empty() {
            choices.push(1);
        }
        if !self.s_events.is_empty() {
            choices.push(2);
        }
        if !self.t_events.is_empty() {
            choices.push(3);
        }
        if self.link_up && !self.to_t.is_empty() {
            choices.push(4);
        }
        if self.link_up && !self.to_s.is_empty() {
            choices.push(5);
        }
        if self.link_up && !self.queries.is_empty() {
            choices.push(6);
        }
        if self.link_up && !self.answers.is_empty() {
            choices.push(7);
        }
        if !self.link_up && (!self.queries.is_empty() || !self.answers.is_empty()) {
            choices.push(8); // a query times out over the dead link
        }
        if self.faults {
            choices.extend([9, 10, 11, 12]);
        } else if !self.link_up {
            choices.push(13);
        }
        if choices.is_empty() {
            return false;
        }
        let c = choices[self.rng.below(choices.len())];
        match c {
            0 => {
                let a = self.s_todo.pop_front().unwrap();
                self.trace.push(format!("S does {a:?}"));
                self.s_do(a);
            }
            1 => {
                let (a, via) = self.t_todo.pop_front().unwrap();
                self.trace.push(format!("T does {a:?}"));
                self.t_do(a, via);
            }
            2 => {
                let e = self.s_events.pop_front().unwrap();
                self.trace.push(format!("S gets {e:?}"));
                self.s_feed(e);
            }
            3 => {
                let (e, via) = self.t_events.pop_front().unwrap();
                self.trace.push(format!("T gets {e:?}"));
                self.t_feed(e, via);
            }
            4 => {
                let m = self.to_t.pop_front().unwrap();
                self.trace.push(format!("T receives {m:?}"));
                self.t_feed(REvent::Msg(m), Via::Stream);
            }
            5 => {
                let m = self.to_s.pop_front().unwrap();
                self.trace.push(format!("S receives {m:?}"));
                self.s_feed(SEvent::Answer(m));
            }
            6 => {
                // Queries may arrive out of order and twice.
                let i = self.rng.below(self.queries.len());
                let q = if self.faults && self.rng.chance(20) {
                    self.queries[i].clone()
                } else {
                    self.queries.remove(i)
                };
                self.trace.push(format!("T serves {q:?}"));
                match q {
                    Query::Decide { decision, .. } => {
                        self.t_feed(REvent::Decide(decision), Via::Query)
                    }
                    Query::Forget { .. } => self.t_feed(REvent::Forget, Via::Query),
                }
            }
            7 => {
                let i = self.rng.below(self.answers.len());
                let a = if self.faults && self.rng.chance(20) {
                    self.answers[i].clone()
                } else {
                    self.answers.remove(i)
                };
                self.trace.push(format!("S gets answer {a:?}"));
                self.s_feed(SEvent::Answer(a));
            }
            8 => {
                self.trace.push("a query is lost".into());
                if !self.queries.is_empty() {
                    self.queries.remove(0);
                } else {
                    self.answers.remove(0);
                }
                self.s_events.push_back(SEvent::LinkLost("timeout".into()));
            }
            9 => {
                if self.rng.chance(30) {
                    self.trace.push(format!("link up={}", !self.link_up));
                    self.link_up = !self.link_up;
                    if !self.link_up {
                        self.kill_stream();
                    }
                }
            }
            10 => {
                if self.rng.chance(10) {
                    self.crash_s();
                }
            }
            11 => {
                if self.rng.chance(10) {
                    self.crash_t();
                }
            }
            12 => {
                // Lose an answer or a query outright (S times out later).
                if self.rng.chance(20) && (!self.answers.is_empty() || !self.queries.is_empty()) {
                    self.trace.push("lost a message".into());
                    if !self.answers.is_empty() {
                        self.answers.remove(0);
                    } else {
                        self.queries.remove(0);
                    }
                    self.s_events.push_back(SEvent::LinkLost("lost".into()));
                }
            }
            13 => {
                self.trace.push("link healed".into());
                self.link_up = true;
            }
            _ => unreachable!(),
        }
        true
    }
}

#[test]
fn simulated_faults_never_two_copies_and_exactly_one_after() {
    simulate(false, false);
}

#[test]
fn simulated_faults_in_stream_mode_never_two_copies_and_exactly_one_after() {
    simulate(true, false);
}

#[test]
fn simulated_faults_in_pre_mode_never_two_copies_and_exactly_one_after() {
    simulate(true, true);
}

fn simulate(streamed: bool, pre: bool) {
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 0..20_000u64 {
        let mut w = World::new(seed, streamed, pre);
        // Pre-copy's rounds are many steps before the freeze: a quiet
        // start of a random length lets faults hit the later states too.
        if w.pre {
            w.faults = false;
            for _ in 0..w.rng.below(90) {
                if !w.step() {
                    break;
                }
            }
            w.faults = true;
        }
        let faulty = w.rng.below(120) + 1;
        for _ in 0..faulty {
            if !w.step() {
                break;
            }
            assert!(
                w.running() <= 1,
                "seed {seed}: two copies run:\n{:#?}",
                w.trace
            );
        }
        // Heal: links up, agents stay up, nothing more lost.
        w.faults = false;
        let mut n = 0;
        while w.step() {
            assert!(
                w.running() <= 1,
                "seed {seed}: two copies run:\n{:#?}",
                w.trace
            );
            n += 1;
            assert!(n < 10_000, "seed {seed}: no end:\n{:#?}", w.trace);
        }
        assert_eq!(
            w.running(),
            1,
            "seed {seed}: {} copies after the heal (S {:?}, T {:?}, outcome {:?}):\n{:#?}",
            w.running(),
            w.s_copy,
            w.t_copy,
            w.outcome,
            w.trace
        );
        assert_eq!(w.s_journal, None, "seed {seed}: S journal left");
        // A tombstone of an applied Go stays if S's Forget was lost.
        assert!(
            matches!(w.t_journal, None | Some(Step::Running)),
            "seed {seed}: T journal left {:?}",
            w.t_journal
        );
        assert!(
            matches!(w.t_copy, TCopy::None | TCopy::Running),
            "seed {seed}: T left {:?}:\n{:#?}",
            w.t_copy,
            w.trace
        );
        let key = match (w.outcome, w.s_copy, w.t_copy) {
            (Some(o), _, _) => o.as_str(),
            (None, SCopy::Running, _) => "untouched (S restarted)",
            (None, SCopy::Resumed, _) => "rolled_back (S restarted)",
            (None, _, TCopy::Running) => "moved (S restarted)",
            _ => "other",
        };
        *outcomes.entry(key).or_insert(0) += 1;
        if w.t_copy == TCopy::Running {
            assert_eq!(w.s_copy, SCopy::Deleted, "seed {seed}");
        }
    }
    eprintln!("outcomes: {outcomes:?}");
    // Every kind of end was reached.
    for k in ["moved", "rolled_back", "untouched"] {
        assert!(outcomes.get(k).copied().unwrap_or(0) > 50, "{outcomes:?}");
    }
}

#[test]
fn receiver_refuses_more_bytes_or_files_than_its_limits_and_discards() {
    let mut r = Receiver::new("m1".into()).with_limits(5, 100);
    staged(&mut r, file("checkpoint/a.img", b"abc"));
    r.handle(REvent::Msg(M::File {
        path: "checkpoint/b.img".into(),
    }))
    .unwrap();
    let a = r
        .handle(REvent::Msg(M::Data {
            zstd: false,
            bytes: b"abc".to_vec(),
        }))
        .unwrap();
    assert_eq!(r.state(), RState::Gone);
    assert!(a.contains(&RAction::Discard), "{a:?}");
    assert!(
        matches!(a.last(), Some(RAction::Reply(TargetMsg::Failed(m))) if m.contains("more than 5 bytes")),
        "{a:?}"
    );

    let mut r = Receiver::new("m2".into()).with_limits(u64::MAX, 1);
    staged(&mut r, file("checkpoint/a.img", b"abc"));
    let a = r
        .handle(REvent::Msg(M::File {
            path: "config.json".into(),
        }))
        .unwrap();
    assert_eq!(r.state(), RState::Gone);
    assert!(
        matches!(a.last(), Some(RAction::Reply(TargetMsg::Failed(m))) if m.contains("more than 1 files")),
        "{a:?}"
    );
}

// ------------------------------------------------------------ stream mode

#[test]
fn stream_sender_kills_the_held_tree_before_it_journals_go() {
    let mut s = Sender::new("m1".into()).streaming();
    for e in to_await_ready() {
        s.handle(e).expect("path to AwaitReady");
    }
    // T voted: first the release (journalled), Go only once the tree is dead.
    assert_eq!(
        s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap(),
        vec![SAction::Journal(Step::Releasing), SAction::Release]
    );
    assert!(s.frozen());
    assert_eq!(
        s.handle(SEvent::Released).unwrap(),
        vec![
            SAction::Journal(Step::Decided(Decision::Go)),
            SAction::Send(M::Go)
        ]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Running)).unwrap(),
        vec![SAction::DeleteOwn]
    );
}

#[test]
fn stream_sender_aborts_when_the_release_resumed_the_tree() {
    let mut s = Sender::new("m1".into()).streaming();
    for e in to_await_ready() {
        s.handle(e).expect("path to AwaitReady");
    }
    s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap();
    assert_eq!(
        s.handle(SEvent::ReleaseFailed("criu died".into())).unwrap(),
        vec![
            SAction::Journal(Step::Decided(Decision::Abort)),
            decide(Decision::Abort)
        ]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Gone)).unwrap(),
        vec![SAction::RestoreOwn]
    );
}

#[test]
fn stream_sender_restarted_in_releasing_decides_by_its_own_tree() {
    // CRIU resumed the tree before the kill: S's copy is the one.
    let (mut s, acts) = Sender::recover("m1".into(), Step::Releasing);
    assert_eq!(acts, vec![SAction::CheckOwn]);
    assert!(s.frozen());
    assert_eq!(
        s.handle(SEvent::OwnAlive(true)).unwrap(),
        vec![
            SAction::Journal(Step::Decided(Decision::Abort)),
            decide(Decision::Abort)
        ]
    );
    // The tree is dead: T's voted copy is the only one left.
    let (mut s, _) = Sender::recover("m1".into(), Step::Releasing);
    assert_eq!(
        s.handle(SEvent::OwnAlive(false)).unwrap(),
        vec![
            SAction::Journal(Step::Decided(Decision::Go)),
            decide(Decision::Go)
        ]
    );
    assert_eq!(
        s.handle(ans(TargetMsg::Running)).unwrap(),
        vec![SAction::DeleteOwn]
    );
}

#[test]
fn stream_receiver_restores_only_once_commit_and_pages_are_both_in() {
    let staged = |pages_first: bool| {
        let mut r = Receiver::new("m1".into()).streaming();
        r.handle(REvent::Msg(M::PreSent)).unwrap();
        r.handle(REvent::Built).unwrap();
        for m in file("config.json", b"{}") {
            r.handle(REvent::Msg(m)).unwrap();
        }
        let restore = vec![RAction::Journal(Step::Restoring), RAction::RestoreFenced];
        if pages_first {
            assert_eq!(r.handle(REvent::PagesIn).unwrap(), vec![]);
            assert_eq!(r.handle(REvent::Msg(M::Commit)).unwrap(), restore);
        } else {
            assert_eq!(r.handle(REvent::Msg(M::Commit)).unwrap(), vec![]);
            assert_eq!(r.state(), RState::Staging);
            assert_eq!(r.handle(REvent::PagesIn).unwrap(), restore);
        }
        assert_eq!(r.state(), RState::Restoring);
    };
    staged(true);
    staged(false);
    // Pages that never come: a lost link discards, nothing was voted.
    let mut r = Receiver::new("m1".into()).streaming();
    r.handle(REvent::Msg(M::PreSent)).unwrap();
    r.handle(REvent::Built).unwrap();
    for m in file("config.json", b"{}") {
        r.handle(REvent::Msg(m)).unwrap();
    }
    r.handle(REvent::Msg(M::Commit)).unwrap();
    let bad = r.handle(REvent::Msg(M::PreSent)).unwrap();
    assert!(
        matches!(bad.last(), Some(RAction::Reply(TargetMsg::Failed(_)))),
        "{bad:?}"
    );
    assert_eq!(r.state(), RState::Gone);
    let mut r = Receiver::new("m1".into()).streaming();
    r.handle(REvent::Msg(M::PreSent)).unwrap();
    r.handle(REvent::Built).unwrap();
    assert_eq!(r.handle(REvent::LinkLost).unwrap(), vec![RAction::Discard]);
}

// --------------------------------------------------------------- pre mode

#[test]
fn pre_convergence_rule() {
    // One big round: go on.
    assert_eq!(pre_converged(&[60_000]), None);
    // A first round that small needs no second.
    assert!(pre_converged(&[100]).unwrap().contains("under 256"));
    // Shrinking, but not yet under 10 % of the first round.
    assert_eq!(pre_converged(&[60_000, 20_000, 9_000]), None);
    let few = pre_converged(&[60_000, 20_000, 5_000]).unwrap();
    assert!(few.contains("under 10 % of round 1's 60000"), "{few}");
    let flat = pre_converged(&[60_000, 20_000, 20_500]).unwrap();
    assert!(flat.contains("stopped shrinking"), "{flat}");
    let most = pre_converged(&[60_000, 50_000, 40_000, 30_000, 20_000]).unwrap();
    assert!(most.contains("5 rounds"), "{most}");
    assert_eq!(pre_converged(&[]), None);
}

#[test]
fn pre_sender_rounds_until_converged_then_dumps_like_stream() {
    let mut s = Sender::new("m1".into()).pre_copy();
    s.handle(PREPARED()).unwrap();
    s.handle(SEvent::PreSent).unwrap();
    let round = |n, last| vec![SAction::Send(M::PageRound { round: n, last })];
    assert_eq!(s.handle(BUILT()).unwrap(), round(1, false));
    assert_eq!(s.phase(), Phase::PreDump);
    assert!(!s.frozen());
    assert_eq!(
        s.handle(ans(TargetMsg::PagesReady)).unwrap(),
        vec![SAction::PreDump(1)]
    );
    assert_eq!(
        s.handle(SEvent::PreDumped { pages: 60_000 }).unwrap(),
        round(2, false)
    );
    s.handle(ans(TargetMsg::PagesReady)).unwrap();
    // Round 2 wrote under 10 % of round 1: the next dump is the last.
    assert_eq!(
        s.handle(SEvent::PreDumped { pages: 3_000 }).unwrap(),
        round(3, true)
    );
    assert!(!s.frozen(), "nothing froze before the final round's server");
    assert_eq!(s.pre_rounds(), &[60_000, 3_000]);
    assert!(s.pre_stop().unwrap().contains("10 %"));
    assert_eq!(
        s.handle(ans(TargetMsg::PagesReady)).unwrap(),
        vec![SAction::Journal(Step::Dumping), SAction::Dump]
    );
    assert!(s.frozen());
    s.handle(SEvent::Dumped).unwrap();
    s.handle(SEvent::Transferred).unwrap();
    // Held like stream mode: release before Go.
    assert_eq!(
        s.handle(ans(TargetMsg::Ready(Box::new(report())))).unwrap(),
        vec![SAction::Journal(Step::Releasing), SAction::Release]
    );
}

#[test]
fn pre_sender_failures_in_the_rounds_leave_it_untouched_without_a_journal() {
    let at_round = || {
        let mut s = Sender::new("m1".into()).pre_copy();
        for e in [
            PREPARED(),
            SEvent::PreSent,
            BUILT(),
            ans(TargetMsg::PagesReady),
        ] {
            s.handle(e).unwrap();
        }
        s
    };
    let mut s = at_round();
    let a = s.handle(SEvent::PreDumpFailed("criu".into())).unwrap();
    assert_eq!(a[0], SAction::Send(M::Abort));
    assert_eq!(finish_outcome(&a), Some(Outcome::Untouched));
    assert!(!a.iter().any(|x| matches!(x, SAction::Journal(_))), "{a:?}");
    match a.last() {
        Some(SAction::Finish { phase, reason, .. }) => {
            assert_eq!(*phase, Some(Phase::PreDump));
            assert!(reason.as_deref().unwrap().contains("pre-dump failed"));
        }
        other => panic!("{other:?}"),
    }
    for ev in [
        SEvent::LinkLost("gone".into()),
        ans(TargetMsg::Failed("page server".into())),
    ] {
        let mut s = at_round();
        s.handle(SEvent::PreDumped { pages: 60_000 }).unwrap();
        let a = s.handle(ev).unwrap();
        assert_eq!(finish_outcome(&a), Some(Outcome::Untouched), "{a:?}");
        assert!(!a.iter().any(|x| matches!(x, SAction::Journal(_))), "{a:?}");
    }
    // A PagesReady nobody asked for changes nothing.
    let mut s = at_round();
    assert!(s.handle(ans(TargetMsg::PagesReady)).is_err());
}

#[test]
fn pre_receiver_one_server_per_round_and_restores_after_the_last() {
    let mut r = Receiver::new("m1".into()).pre_copy();
    // No round before the container is built.
    let mut early = Receiver::new("m1".into()).pre_copy();
    let a = early
        .handle(REvent::Msg(M::PageRound {
            round: 1,
            last: false,
        }))
        .unwrap();
    assert!(
        matches!(a.last(), Some(RAction::Reply(TargetMsg::Failed(_)))),
        "{a:?}"
    );
    build(&mut r);
    let ask = |r: &mut Receiver, round, last| {
        r.handle(REvent::Msg(M::PageRound { round, last })).unwrap()
    };
    assert_eq!(
        ask(&mut r, 1, false),
        vec![RAction::StartPages {
            round: 1,
            last: false
        }]
    );
    assert_eq!(
        r.handle(REvent::PagesReady).unwrap(),
        vec![RAction::Reply(TargetMsg::PagesReady)]
    );
    assert_eq!(r.handle(REvent::PagesIn).unwrap(), vec![]);
    ask(&mut r, 2, true);
    r.handle(REvent::PagesReady).unwrap();
    staged(&mut r, file("config.json", b"{}"));
    // The final round's pages are not in yet: the commit waits for them.
    assert_eq!(r.handle(REvent::Msg(M::Commit)).unwrap(), vec![]);
    assert_eq!(
        r.handle(REvent::PagesIn).unwrap(),
        vec![RAction::Journal(Step::Restoring), RAction::RestoreFenced]
    );

    // Out of order, skipped, repeated rounds and early commits discard.
    for bad in [
        vec![(2, false)],
        vec![(1, false), (2, false)], // round 1's pages are not in
        vec![(1, true), (2, false)],  // after the last
    ] {
        let mut r = Receiver::new("m1".into()).pre_copy();
        build(&mut r);
        let mut last = vec![];
        for (n, l) in bad {
            last = ask(&mut r, n, l);
            if r.state() == RState::Staging {
                r.handle(REvent::PagesReady).unwrap();
            }
        }
        assert!(
            matches!(last.last(), Some(RAction::Reply(TargetMsg::Failed(_)))),
            "{last:?}"
        );
        assert!(last.contains(&RAction::Discard), "{last:?}");
    }
    let mut r = Receiver::new("m1".into()).pre_copy();
    build(&mut r);
    ask(&mut r, 1, false);
    r.handle(REvent::PagesReady).unwrap();
    r.handle(REvent::PagesIn).unwrap();
    staged(&mut r, file("config.json", b"{}"));
    let a = r.handle(REvent::Msg(M::Commit)).unwrap();
    assert!(
        a.contains(&RAction::Discard),
        "commit before the last round: {a:?}"
    );
    // A page round in stream or stop mode is refused.
    let mut r = Receiver::new("m1".into());
    build(&mut r);
    let a = ask(&mut r, 1, false);
    assert!(a.contains(&RAction::Discard), "{a:?}");
}
