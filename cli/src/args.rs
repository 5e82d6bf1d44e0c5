//! Argument types and parsers more than one command shares.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_coordinator::policy::PlacementConfig;

/// The one duration spelling of every command: `500ms`, `1s`, `2m30s`,
/// `1h` (humantime's units, combinable), or a bare number of seconds (`7`,
/// `0.3`); `2.5m` (a decimal with one unit) too.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let hint = || format!("bad duration {s:?}: use e.g. 500ms, 1s, 2m30s, 1h or seconds");
    if let Ok(v) = s.parse::<f64>() {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{}", hint());
        }
        return Ok(Duration::from_secs_f64(v));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(d);
    }
    // A decimal with one unit, which humantime does not take.
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        bail!("{}", hint());
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(hint)?;
    Ok(Duration::from_secs_f64(v * mult))
}

/// A duration as seconds (for flags kept as `f64` seconds).
pub fn seconds(s: &str) -> Result<f64, String> {
    parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| e.to_string())
}

/// A duration as whole seconds, rounded up (for flags the wire carries as
/// whole seconds: `stop -t 500ms` waits 1 s, never 0).
pub fn whole_seconds(s: &str) -> Result<u64, String> {
    parse_duration(s)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .map_err(|e| e.to_string())
}

/// The one size spelling of every command (herd_wire::size::parse_size):
/// `64m`, `1.5g`, `64MiB`, `512k`, bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    herd_wire::size::parse_size(s)
        .with_context(|| format!("bad size {s:?}: use e.g. 64m, 1.5g, 64MiB, 512k or bytes"))
}

/// [`parse_size`] for clap.
pub fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct PlacementArgs {
    /// Samples each decision looks at: seconds or a duration (30, 30s, 2m30s ...).
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub window: f64,
    /// Seconds between decisions.
    #[arg(long, default_value = "150", value_parser = seconds)]
    pub period: f64,
    /// Seconds before the first decision.
    #[arg(long, default_value = "150", value_parser = seconds)]
    pub delay: f64,
    /// Seconds a container stays put after a move.
    #[arg(long, default_value = "450", value_parser = seconds)]
    pub cooldown: f64,
    /// Samples a container needs in the window before it may move.
    #[arg(long, default_value_t = 10)]
    pub min_samples: u32,
    /// Moves per decision, at most.
    #[arg(long, default_value_t = 2)]
    pub max_moves: usize,
    /// Policy-specific setting KEY=VALUE (repeatable).
    #[arg(long = "policy-opt")]
    pub policy_opt: Vec<String>,
}

impl PlacementArgs {
    pub fn config(&self) -> Result<PlacementConfig> {
        let mut c = PlacementConfig {
            window_s: self.window,
            period_s: self.period,
            delay_s: self.delay,
            max_moves: self.max_moves,
            ..Default::default()
        };
        c.anti_bounce.cooldown_s = self.cooldown;
        c.anti_bounce.min_samples = self.min_samples;
        for o in &self.policy_opt {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("--policy-opt {o:?}: expected KEY=VALUE"))?;
            c.options.insert(k.to_string(), v.to_string());
        }
        if self.cooldown.is_nan() || self.cooldown < 0.0 {
            bail!("--cooldown must be >= 0");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("2m30s").unwrap(), Duration::from_secs(150));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0.3").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2.5m").unwrap(), Duration::from_secs(150));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("NaN").is_err());
        assert_eq!(whole_seconds("500ms"), Ok(1));
        assert_eq!(whole_seconds("2m"), Ok(120));
        assert_eq!(whole_seconds("0"), Ok(0));
    }
}
