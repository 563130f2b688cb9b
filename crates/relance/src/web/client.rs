//! Who is on the other end: the peer's address, or, when the peer is a trusted reverse
//! proxy, the address and scheme it forwards. `X-Forwarded-*` from anyone else is
//! ignored, so that a client cannot pick the address it is logged and counted under, nor
//! claim HTTPS.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Put on every request by the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// What a trusted proxy says of the scheme (`X-Forwarded-Proto`); `None` when the peer
    /// is not a trusted proxy or said nothing.
    pub forwarded_https: Option<bool>,
}

impl Client {
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Client { ip: peer, forwarded_https: None };
        }
        // Each proxy appends the address it got the request from: walk from the right and
        // stop at the first address that is not one of ours.
        let chain: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        let ip = chain.iter().rev().find(|ip| !is_trusted(ip)).or(chain.first()).copied().unwrap_or(peer);
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Client { ip, forwarded_https }
    }
}

/// `trusted_proxies` entries: addresses (`127.0.0.1`, `::1`) or networks (`10.0.0.0/8`).
pub fn parse_trusted(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>().or_else(|_| e.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                format!("trusted_proxies: {e:?} is neither an address (127.0.0.1, ::1) nor a network (10.0.0.0/8)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = parse_trusted(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")]);
        let via_proxy = Client::resolve("127.0.0.1".parse().unwrap(), &h, &trusted);
        assert_eq!(via_proxy, Client { ip: "203.0.113.7".parse().unwrap(), forwarded_https: Some(true) });
        let direct = Client::resolve("198.51.100.2".parse().unwrap(), &h, &trusted);
        assert_eq!(direct, Client { ip: "198.51.100.2".parse().unwrap(), forwarded_https: None });
    }

    #[test]
    fn a_spoofed_left_part_of_the_chain_is_not_believed() {
        let trusted = parse_trusted(&["10.0.0.0/8".into()]).unwrap();
        // The client sent "1.2.3.4" itself; the edge proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9"), ("x-forwarded-for", "10.0.0.5")]);
        let c = Client::resolve("10.0.0.6".parse().unwrap(), &h, &trusted);
        assert_eq!(c.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(c.forwarded_https, None);
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        assert_eq!(parse_trusted(&["::1".into(), "192.168.0.0/16".into()]).unwrap().len(), 2);
        assert!(parse_trusted(&["localhost".into()]).unwrap_err().contains("\"localhost\""));
    }
}
