//! The caller's address: the TCP peer (serve) or the function URL's `requestContext.http.sourceIp`
//! (Lambda). `X-Forwarded-For` counts only when that peer is a trusted proxy (`--trusted-proxy`):
//! then the rightmost address not itself a trusted proxy is the caller's.

use ipnet::IpNet;
use std::net::IpAddr;

/// Why the source address cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("X-Forwarded-For from a trusted proxy holds {0:?}, which is not an IP address")]
    BadForwardedFor(String),
}

/// The caller's address. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as IPv4.
pub fn source_ip(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Result<IpAddr, SourceError> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let Some(header) = forwarded_for.filter(|_| is_trusted(&peer)) else {
        return Ok(peer);
    };
    let mut hops = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip: IpAddr = part
            .parse()
            .map_err(|_| SourceError::BadForwardedFor(part.to_owned()))?;
        hops.push(ip.to_canonical());
    }
    Ok(hops
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer))
}

/// The grant's CIDR for an address: /32 or /128.
pub fn host_cidr(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// What the per-address rate limit counts: the address itself for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64, and rotating addresses within it must not reset the limit).
pub fn rate_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(_) => IpNet::new(ip, 64).map_or(ip.to_string(), |n| n.trunc().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // Not from a proxy: the header is the caller's word, ignored.
        assert_eq!(
            source_ip(ip("198.51.100.1"), Some("203.0.113.9"), &trusted),
            Ok(ip("198.51.100.1"))
        );
        assert_eq!(
            source_ip(ip("127.0.0.1"), Some("203.0.113.9"), &[]),
            Ok(ip("127.0.0.1"))
        );
        // From the proxy: the rightmost untrusted hop (a spoofed leftmost entry is not it).
        assert_eq!(
            source_ip(
                ip("10.1.1.1"),
                Some("6.6.6.6, 203.0.113.9, 10.2.2.2"),
                &trusted
            ),
            Ok(ip("203.0.113.9"))
        );
        // All trusted: the leftmost.
        assert_eq!(
            source_ip(ip("10.1.1.1"), Some("10.3.3.3"), &trusted),
            Ok(ip("10.3.3.3"))
        );
        // From the proxy without a header: the proxy itself.
        assert_eq!(
            source_ip(ip("10.1.1.1"), None, &trusted),
            Ok(ip("10.1.1.1"))
        );
        assert!(matches!(
            source_ip(ip("10.1.1.1"), Some("evil"), &trusted),
            Err(SourceError::BadForwardedFor(_))
        ));
        // Mapped addresses are IPv4.
        assert_eq!(
            source_ip(ip("::ffff:198.51.100.1"), None, &trusted),
            Ok(ip("198.51.100.1"))
        );
        assert_eq!(host_cidr(ip("::1")).to_string(), "::1/128");
        assert_eq!(host_cidr(ip("192.0.2.1")).to_string(), "192.0.2.1/32");
    }

    #[test]
    fn an_ipv6_host_is_rate_limited_by_its_64() {
        assert_eq!(rate_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            rate_key(ip("2001:db8:1:2:bbbb::9")),
            rate_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:3::1")),
            rate_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(rate_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
