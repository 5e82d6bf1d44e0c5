//! The agent's config file: `herd-agent --config /etc/herd/agent.toml`.
//!
//! One TOML `key = value` per command-line flag, named like the flag
//! (`state-dir` or `state_dir`); strings, numbers and booleans (a `true`
//! boolean is a bare flag). Flags on the command line win over the file.
//! The file becomes flags placed before the command line's, so the file and
//! the flags are checked by the same parser. Example (what `herd lab up --vm`
//! writes into each guest, and what an operator writes by hand):
//!
//! ```toml
//! node = "n1"
//! listen = "10.0.0.11:7700"
//! ca = "/etc/herd/ca.pem"
//! cert = "/etc/herd/node.pem"
//! key = "/etc/herd/node.key"
//! criu = "/opt/herd/criu/bin/criu"
//! metrics-listen = "10.0.0.11:9100"
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("--config needs a file name")]
    MissingPath,
}

/// `argv` with the settings of its `--config FILE` (if any) inserted as
/// flags right after the program name. `known`: the long flag names the
/// program accepts (without dashes); any other key in the file is an error.
pub fn expand_args(argv: Vec<OsString>, known: &[String]) -> Result<Vec<OsString>, ConfigError> {
    let mut path = None;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            path = Some(PathBuf::from(it.next().ok_or(ConfigError::MissingPath)?));
        } else if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let flags = flags_from_toml(&text, known).map_err(|msg| ConfigError::Invalid {
        path: path.clone(),
        msg,
    })?;
    let mut out = Vec::with_capacity(argv.len() + flags.len());
    let mut argv = argv.into_iter();
    out.extend(argv.next());
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(argv);
    Ok(out)
}

fn flags_from_toml(text: &str, known: &[String]) -> Result<Vec<String>, String> {
    let table: BTreeMap<String, serde_json::Value> =
        basic_toml::from_str(text).map_err(|e| e.to_string())?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if flag == "config" || !known.contains(&flag) {
            return Err(format!(
                "unknown key {key:?} (known: {})",
                known
                    .iter()
                    .filter(|k| *k != "config")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        match value {
            serde_json::Value::Bool(true) => flags.push(format!("--{flag}")),
            serde_json::Value::Bool(false) => {}
            serde_json::Value::String(s) => flags.push(format!("--{flag}={s}")),
            serde_json::Value::Number(n) => flags.push(format!("--{flag}={n}")),
            other => {
                return Err(format!(
                    "key {key:?}: {other} is not a string, number or boolean"
                ))
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["node", "state-dir", "cpus", "config", "listen"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn file_settings_come_before_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "node = \"n1\"\nstate_dir = \"/srv/herd\"\ncpus = 1.5\n").unwrap();
        let argv: Vec<OsString> = [
            "herd-agent",
            "--config",
            p.to_str().unwrap(),
            "--node",
            "n2",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let out = expand_args(argv, &known()).unwrap();
        let out: Vec<String> = out.into_iter().map(|s| s.into_string().unwrap()).collect();
        assert_eq!(
            out,
            [
                "herd-agent",
                "--cpus=1.5",
                "--node=n1",
                "--state-dir=/srv/herd",
                "--config",
                p.to_str().unwrap(),
                "--node",
                "n2"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let e = flags_from_toml("nodes = \"x\"\n", &known()).unwrap_err();
        assert!(e.contains("unknown key \"nodes\""), "{e}");
        let e = flags_from_toml("node = [1, 2]\n", &known()).unwrap_err();
        assert!(e.contains("not a string"), "{e}");
        assert!(flags_from_toml("node = \n", &known()).is_err());
        assert!(flags_from_toml("config = \"/x\"\n", &known()).is_err());
    }

    #[test]
    fn no_config_flag_leaves_argv_alone() {
        let argv: Vec<OsString> = ["herd-agent", "--node", "n1"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(expand_args(argv.clone(), &known()).unwrap(), argv);
        let e = expand_args(
            ["herd-agent", "--config", "/nonexistent/agent.toml"]
                .iter()
                .map(OsString::from)
                .collect(),
            &known(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/agent.toml"), "{e}");
    }
}
