//! The library behind `herd` (and `herd-bench`, in benches/): the commands
//! and what they share. `src/main.rs` is the clap tree over [`commands`].

pub mod commands;

// What the commands share: context, talking to agents, showing results.
pub mod args;
pub mod client;
pub mod cluster;
pub mod context;
pub mod exit;
pub mod migrate;
pub mod paths;
pub mod process;
pub mod ui;

// The machinery behind the bigger commands.
pub mod coordinator;
pub mod lab;
pub mod lab_vm;
pub mod monitor;
pub mod network;
pub mod node;
pub mod rootfs;
pub mod top;
