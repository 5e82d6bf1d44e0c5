//! Network definitions: subnet and address-range arithmetic shared by the
//! CLI (which hands out addresses) and the agents (which check them).

use std::net::Ipv4Addr;

use crate::NetworkDef;

/// A parsed [`NetworkDef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("subnet {s:?}: expected A.B.C.D/N"))?;
        let ip: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("subnet {s:?}: bad address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("subnet {s:?}: prefix must be 8..30"))?;
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }
    /// A host address of the subnet (not the network or broadcast address).
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        let (i, b) = (u32::from(ip), u32::from(self.base));
        i & self.mask() == b && i != b && i != b | !self.mask()
    }
}

/// `A.B.C.D-A.B.C.E` inside the subnet.
pub fn parse_range(def: &NetworkDef, net: &Subnet) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = def
        .range
        .split_once('-')
        .ok_or_else(|| format!("range {:?}: expected A.B.C.D-A.B.C.E", def.range))?;
    let a: Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| format!("range {:?}: bad start", def.range))?;
    let b: Ipv4Addr = b
        .trim()
        .parse()
        .map_err(|_| format!("range {:?}: bad end", def.range))?;
    if !net.holds(a) || !net.holds(b) || u32::from(a) > u32::from(b) {
        return Err(format!(
            "range {} is not an ordered range inside {}",
            def.range, def.subnet
        ));
    }
    Ok((a, b))
}

/// The upper half of a subnet's host addresses (the lower half is left to
/// hosts and gateways).
pub fn default_range(subnet: &str) -> Result<String, String> {
    let n = Subnet::parse(subnet)?;
    let size = 1u32 << (32 - n.prefix);
    let base = u32::from(n.base);
    let (a, b) = (base + size / 2, base + size - 2);
    Ok(format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)))
}

/// The MAC of an address on a network: stable, locally administered unicast.
pub fn mac_for(network: &str, ip: Ipv4Addr) -> [u8; 6] {
    // FNV-1a over the network name and the address.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in network.bytes().chain(ip.octets()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_is_the_upper_half() {
        assert_eq!(
            default_range("10.9.8.0/24").unwrap(),
            "10.9.8.128-10.9.8.254"
        );
        assert_eq!(default_range("10.9.8.0/30").unwrap(), "10.9.8.2-10.9.8.2");
    }

    #[test]
    fn macs_are_stable_local_unicast() {
        let a = mac_for("lab", Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(a, mac_for("lab", Ipv4Addr::new(10, 0, 0, 5)));
        assert_ne!(a, mac_for("lab", Ipv4Addr::new(10, 0, 0, 6)));
        assert_eq!(a[0] & 0x03, 0x02);
        assert_eq!(format_mac(&[2, 0xab, 0, 1, 2, 3]), "02:ab:00:01:02:03");
    }

    #[test]
    fn subnets_and_ranges() {
        let n = Subnet::parse("10.1.2.77/24").unwrap();
        assert_eq!(n.base, Ipv4Addr::new(10, 1, 2, 0));
        assert!(n.holds(Ipv4Addr::new(10, 1, 2, 1)));
        assert!(!n.holds(Ipv4Addr::new(10, 1, 2, 0)));
        assert!(!n.holds(Ipv4Addr::new(10, 1, 2, 255)));
        assert!(!n.holds(Ipv4Addr::new(10, 1, 3, 5)));
        for bad in ["10.1.2.0", "10.1.2.0/33", "10.1.2.0/4", "x/24"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
        let def = NetworkDef {
            name: "n".into(),
            subnet: "10.1.2.0/24".into(),
            gateway: None,
            parent: "eth0".into(),
            range: "10.1.2.100-10.1.2.200".into(),
        };
        assert_eq!(
            parse_range(&def, &n).unwrap(),
            (Ipv4Addr::new(10, 1, 2, 100), Ipv4Addr::new(10, 1, 2, 200))
        );
        for r in ["10.1.2.200-10.1.2.100", "10.1.3.1-10.1.3.9", "10.1.2.1"] {
            let d = NetworkDef {
                range: r.into(),
                ..def.clone()
            };
            assert!(parse_range(&d, &n).is_err(), "{r}");
        }
    }
}
