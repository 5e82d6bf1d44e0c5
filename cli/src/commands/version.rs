//! `herd version [--json]`: this client's version, its `--json` format and
//! the agent protocol it speaks (Podman has `podman version`, LXD an
//! `api_version`: a script checks the format once, here, instead of every
//! output carrying it; the outputs keep Podman's shapes, arrays for lists).

use anyhow::Result;
use clap::Args;

/// The format of every `--json` output (docs/json.md says what changed).
pub const JSON_FORMAT: u32 = 2;

#[derive(Args, Debug)]
pub struct VersionArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &VersionArgs) -> Result<i32> {
    let version = env!("CARGO_PKG_VERSION");
    let protocol = herd_wire::PROTOCOL_VERSION;
    if a.json {
        let v = serde_json::json!({
            "version": version,
            "json_format": JSON_FORMAT,
            "protocol": protocol,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("herd {version}\nJSON format: {JSON_FORMAT}\nagent protocol: {protocol}");
    }
    Ok(0)
}
