//! One module per command or command group, each an args struct (or a
//! subcommand enum) and a `run` over the library modules of this crate.

pub mod bench;
pub mod ca;
pub mod checkpoint;
pub mod coordinator;
pub mod exec;
pub mod forecast;
pub mod image;
pub mod inspect;
pub mod kill;
pub mod lab;
pub mod logs;
pub mod migrate;
pub mod monitor;
pub mod network;
pub mod node;
pub mod pong;
pub mod ps;
pub mod report;
pub mod restart;
pub mod restore;
pub mod rm;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod start;
pub mod stats;
pub mod stop;
pub mod top;
pub mod version;
pub mod wait;
