//! `herd-fuzz`: a small mutation fuzzer for the targets of [`herd_fuzz`],
//! on the stable toolchain (see the crate docs).
//!
//! ```text
//! herd-fuzz [--seconds N] [--seed S] [--only TARGET] [--write-corpus DIR]
//! ```
//! The time is split evenly among the targets. Prints, per target, the
//! inputs run and the time taken; exits 1 on a finding (a panic), with the
//! input saved under `fuzz/artifacts/<target>/`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use herd_fuzz::{seeds, TARGETS};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
    512,
    1 << 20,
    16 << 20,
];

const MAX_LEN: usize = 1 << 20;

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                // An interesting integer, 1/2/4/8 bytes, either endianness.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let src = if rng.below(2) == 0 {
                    &bytes[..w]
                } else {
                    &bytes[8 - w..]
                };
                let at = rng.below(len);
                for (k, b) in src.iter().enumerate() {
                    if let Some(x) = input.get_mut(at + k) {
                        *x = *b;
                    }
                }
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(512));
                input.drain(a..a + n);
            }
            4 if len < MAX_LEN => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(64);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, fill);
            }
            5 if len > 0 && len < MAX_LEN => {
                // Duplicate a chunk (repeated structures, longer lists).
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(1024));
                let chunk = input[a..a + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            6 if !corpus.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let cut = rng.below(len + 1);
                input.truncate(cut);
            }
        }
    }
    input.truncate(MAX_LEN);
}

fn load_dir(dir: &Path) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(d) = std::fs::read(&p) {
                v.push(d);
            }
        }
    }
    v
}

fn save_finding(root: &Path, target: &str, input: &[u8]) -> PathBuf {
    use sha2::Digest;
    let dir = root.join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!(
        "crash-{}",
        &hex::encode(sha2::Sha256::digest(input))[..16]
    ));
    let _ = std::fs::write(&p, input);
    p
}

fn main() {
    let mut seconds = 60.0f64;
    let mut seed = 0x5eed_u64;
    let mut only: Option<String> = None;
    let mut write_corpus: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next().unwrap_or_else(|| {
                eprintln!("herd-fuzz: {a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--seconds" => seconds = val().parse().unwrap_or(seconds),
            "--seed" => seed = val().parse().unwrap_or(seed),
            "--only" => only = Some(val()),
            "--write-corpus" => write_corpus = Some(PathBuf::from(val())),
            _ => {
                eprintln!("usage: herd-fuzz [--seconds N] [--seed S] [--only TARGET] [--write-corpus DIR]");
                std::process::exit(2)
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|(n, _)| only.as_deref().is_none_or(|o| o == *n))
        .collect();
    if targets.is_empty() {
        eprintln!("herd-fuzz: no target {only:?}");
        std::process::exit(2);
    }
    if let Some(dir) = write_corpus {
        for (name, _) in &targets {
            let d = dir.join(name);
            let _ = std::fs::create_dir_all(&d);
            for (i, s) in seeds(name).iter().enumerate() {
                let _ = std::fs::write(d.join(format!("seed-{i}")), s);
            }
        }
        println!("seeds written to {}", dir.display());
        return;
    }
    // Panics are findings; keep their messages short and ours.
    std::panic::set_hook(Box::new(|info| eprintln!("herd-fuzz: panic: {info}")));
    let per = Duration::from_secs_f64(seconds / targets.len() as f64);
    let mut findings = 0;
    let mut total = 0u64;
    println!(
        "herd-fuzz: seed {seed}, {seconds} s over {} targets",
        targets.len()
    );
    for (name, f) in targets {
        let mut corpus = seeds(name);
        corpus.extend(load_dir(&root.join("corpus").join(name)));
        let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let t0 = Instant::now();
        let mut runs = 0u64;
        let run = |input: &[u8], runs: &mut u64| -> bool {
            *runs += 1;
            catch_unwind(AssertUnwindSafe(|| f(input))).is_err()
        };
        let mut found = 0;
        for s in corpus.clone() {
            if run(&s, &mut runs) {
                let p = save_finding(&root, name, &s);
                eprintln!(
                    "herd-fuzz: {name}: seed input panics, saved as {}",
                    p.display()
                );
                found += 1;
            }
        }
        while t0.elapsed() < per && found < 5 {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            if run(&input, &mut runs) {
                let p = save_finding(&root, name, &input);
                eprintln!("herd-fuzz: {name}: finding saved as {}", p.display());
                found += 1;
            } else if rng.below(64) == 0 && corpus.len() < 256 {
                // Keep some survivors: mutations of mutations go deeper.
                corpus.push(input);
            }
        }
        println!(
            "herd-fuzz: {name}: {runs} inputs in {:.1} s, {found} findings",
            t0.elapsed().as_secs_f64()
        );
        findings += found;
        total += runs;
    }
    println!("herd-fuzz: {total} inputs, {findings} findings");
    if findings > 0 {
        std::process::exit(1);
    }
}
