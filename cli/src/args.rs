//! Argument types and parsers more than one command shares.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use herd_coordinator::policy::PlacementConfig;

/// `30s`, `2m`, `1h`, `500ms` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("bad duration {s:?}: use e.g. 30s, 2m, 1h, 500ms"))?;
    Ok(Duration::from_secs_f64(v * mult))
}

#[derive(Args, Debug)]
pub struct PlacementArgs {
    /// Seconds of samples each decision looks at (30, 30s, 2m ...).
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

/// Seconds as `30`, `30s`, `2.5m`, `1h` or `500ms`.
fn seconds(s: &str) -> Result<f64, String> {
    parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| e.to_string())
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
    }
}
