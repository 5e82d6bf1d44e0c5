//! MAC addresses: `aa:bb:cc:dd:ee:ff` parsing and formatting, and locally
//! administered unicast MACs (first octet `x2`, `x6`, `xA` or `xE`) for links
//! Herd creates, either derived from a seed (same seed, same MAC) or random.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Parses `aa:bb:cc:dd:ee:ff` (either case, exactly six two-digit groups).
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let invalid = |reason| Error::Invalid {
        what: "MAC address",
        value: text.to_string(),
        reason,
    };
    let mut mac = [0u8; 6];
    let mut groups = text.split(':');
    for byte in mac.iter_mut() {
        let group = groups
            .next()
            .ok_or_else(|| invalid("fewer than 6 groups"))?;
        if group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("each group must be two hex digits"));
        }
        *byte = u8::from_str_radix(group, 16).map_err(|_| invalid("not hexadecimal"))?;
    }
    if groups.next().is_some() {
        return Err(invalid("more than 6 groups"));
    }
    Ok(mac)
}

/// Formats as lowercase `aa:bb:cc:dd:ee:ff`, the way iproute2 prints MACs.
pub fn format_mac(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// True when the MAC is unicast and locally administered.
pub fn is_locally_administered_unicast(mac: &[u8; 6]) -> bool {
    mac[0] & 0x01 == 0 && mac[0] & 0x02 != 0
}

/// A locally administered unicast MAC derived from `seed` (same seed, same
/// MAC): the seed is mixed with splitmix64 so nearby seeds differ widely.
pub fn locally_administered_mac(seed: u64) -> [u8; 6] {
    let bits = splitmix64(seed).to_le_bytes();
    let mut mac = [bits[0], bits[1], bits[2], bits[3], bits[4], bits[5]];
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// A random locally administered unicast MAC, from the kernel's `getrandom`
/// (with a time, pid and counter fallback should that ever fail).
pub fn random_locally_administered_mac() -> [u8; 6] {
    locally_administered_mac(random_seed())
}

fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return u64::from_le_bytes(buf);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip() {
        let mac = parse_mac("02:AB:cd:00:ff:10").expect("valid MAC");
        assert_eq!(mac, [0x02, 0xab, 0xcd, 0x00, 0xff, 0x10]);
        assert_eq!(format_mac(&mac), "02:ab:cd:00:ff:10");
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "",
            "02:ab:cd:00:ff",
            "02:ab:cd:00:ff:10:11",
            "02:ab:cd:00:ff:1",
            "02:ab:cd:00:ff:zz",
            "02-ab-cd-00-ff-10",
            "02:ab:cd:00:ff:+1",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn seeded_macs_are_stable_local_unicast() {
        assert_eq!(locally_administered_mac(7), locally_administered_mac(7));
        assert_ne!(locally_administered_mac(7), locally_administered_mac(8));
        for seed in 0..1000 {
            assert!(is_locally_administered_unicast(&locally_administered_mac(
                seed
            )));
        }
        let a = random_locally_administered_mac();
        let b = random_locally_administered_mac();
        assert!(is_locally_administered_unicast(&a));
        assert_ne!(a, b);
    }
}
