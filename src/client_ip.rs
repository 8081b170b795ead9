//! Which address a request comes from, for per-client limits (the login throttle).
//!
//! The socket peer is the client unless it is one of `server.trusted_proxies`: then the client is
//! read from `X-Forwarded-For`, walking from the right (the hop our proxy appended) past every
//! trusted proxy to the first address that is not one. Entries left of that were written by the
//! client itself and are never believed, so a forged header cannot choose a throttle bucket.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The client address of `req`, honouring `X-Forwarded-For` only from a trusted peer.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(resolve(peer, req.headers(), trusted_proxies))
}

fn is_trusted(ip: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    // An IPv4 peer may show up as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    trusted_proxies.iter().any(|net| net.contains(&ip))
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted_proxies) {
        return peer;
    }
    // Several X-Forwarded-For lines are one list, in order (RFC 9110 §5.3).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip, trusted_proxies) => client = ip,
            Ok(ip) => return ip,
            // A trusted proxy wrote something that is not an address: stop at the last known hop.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in xff {
            map.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn nets(cidrs: &[&str]) -> Vec<IpNet> {
        cidrs.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = headers(&["203.0.113.7"]);
        assert_eq!(resolve(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_peer_forwards_the_first_untrusted_hop_from_the_right() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        // The client forged the leftmost entry; our proxies appended the rest.
        let h = headers(&["1.2.3.4, 203.0.113.7", "192.168.1.1"]);
        assert_eq!(resolve(ip("10.1.2.3"), &h, &trusted), ip("203.0.113.7"));
        // No header: the proxy itself is all we know.
        assert_eq!(
            resolve(ip("10.1.2.3"), &headers(&[]), &trusted),
            ip("10.1.2.3")
        );
        // Garbage written by a trusted hop stops the walk there.
        let h = headers(&["not-an-ip, 10.9.9.9"]);
        assert_eq!(resolve(ip("10.1.2.3"), &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let trusted = nets(&["127.0.0.1/32"]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
    }
}
