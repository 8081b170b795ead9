//! The SSRF guard: which addresses a partner's endpoint may make us call. A URL is checked when
//! it is registered (so the partner hears why at once) and again on every connection, inside the
//! HTTP client's resolver: the addresses a name resolves to at delivery time are the only ones the
//! client may connect to, and each is checked, so a name that resolves to a public address at
//! registration and to `127.0.0.1` later (DNS rebinding) is refused at the moment it matters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why an address may not be called, or `None` when it may. Covers loopback, private,
/// link-local (with the cloud metadata address 169.254.169.254), CGNAT, unique-local,
/// multicast and reserved ranges, also when an IPv4 address hides inside an IPv6 one.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, nets: &[(&str, &'static str)]) -> Option<&'static str> {
    nets.iter().find_map(|(net, reason)| {
        net.parse::<Ipv4Net>()
            .ok()
            .filter(|n| n.contains(&ip))
            .map(|_| *reason)
    })
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        return Some("the cloud metadata address");
    }
    in_v4(
        ip,
        &[
            ("0.0.0.0/8", "an unspecified (this network) address"),
            ("127.0.0.0/8", "a loopback address"),
            ("10.0.0.0/8", "a private address"),
            ("172.16.0.0/12", "a private address"),
            ("192.168.0.0/16", "a private address"),
            ("169.254.0.0/16", "a link-local address"),
            ("100.64.0.0/10", "a carrier-grade NAT address"),
            ("192.0.0.0/24", "an IETF protocol assignment address"),
            ("192.0.2.0/24", "a documentation address"),
            ("198.51.100.0/24", "a documentation address"),
            ("203.0.113.0/24", "a documentation address"),
            ("198.18.0.0/15", "a benchmarking address"),
            ("224.0.0.0/4", "a multicast address"),
            ("240.0.0.0/4", "a reserved address"),
        ],
    )
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96)
    // and 6to4 (2002::/16) reach an IPv4 address: judge that one. A stack or a gateway that
    // translates them connects to the embedded address, loopback and private ones included.
    let segments = ip.segments();
    let o = ip.octets();
    let last_v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return forbidden_v4(last_v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(last_v4);
    }
    if segments[0] == 0x2002 {
        return forbidden_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    let nets: &[(&str, &'static str)] = &[
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible address"),
        // Translated by a gateway of the operator's own network to addresses we cannot judge.
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        // Teredo hides an (obfuscated) IPv4 address of a relay and a client; nothing public
        // needs it to receive webhooks.
        ("2001::/32", "a Teredo address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001:db8::/32", "a documentation address"),
        ("100::/64", "a discard-only address"),
    ];
    nets.iter().find_map(|(net, reason)| {
        net.parse::<Ipv6Net>()
            .ok()
            .filter(|n| n.contains(&ip))
            .map(|_| *reason)
    })
}

/// A refused target, as the resolver reports it (the delivery's `last_error`) and as
/// registration answers it (422). Its message names the host only: what an internal name
/// resolves to, and which kind of internal address that is, is ours to know (the log has it),
/// not a partner's to map our network with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} is {NOT_ALLOWED}")]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub reason: &'static str,
}

/// What a refused target is called wherever a partner reads it.
pub const NOT_ALLOWED: &str =
    "not an allowed destination: webhooks are delivered to public addresses only";

/// Checks every address of `host`: one forbidden address refuses the host, since the client
/// might pick it.
pub fn check_addresses(host: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
    for addr in addrs {
        if let Some(reason) = forbidden_reason(addr.ip()) {
            return Err(Refused {
                host: host.to_owned(),
                ip: addr.ip(),
                reason,
            });
        }
    }
    Ok(())
}

/// Resolves `host` with the system resolver.
pub async fn resolve(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    // Brackets of an IPv6 literal are URL syntax, not part of the address.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok(tokio::net::lookup_host((bare, 0)).await?.collect())
}

/// The delivery client's resolver: resolves, then refuses any forbidden address, so the client
/// connects only to checked addresses. IP-literal URLs never reach a resolver; the delivery
/// checks those itself.
pub struct GuardedResolver {
    /// `webhooks.allow_private_targets`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve(&host).await?;
            if !allow_private && let Err(refused) = check_addresses(&host, &addrs) {
                tracing::warn!(host, ip = %refused.ip, reason = refused.reason, "webhook target refused at delivery");
                return Err(refused.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        forbidden_reason(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "224.0.0.1",
            // IPv4-translated (::ffff:0:a.b.c.d), which `to_ipv4_mapped` does not see.
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:0.0.0.0",
            // IPv4-compatible, NAT64 and 6to4 with private and metadata addresses inside.
            "::7f00:1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::192.168.1.1",
            "64:ff9b:1::808:808",
            "2002:a00:1::1",
            "2002:c0a8:101::",
            "2002:a9fe:a9fe::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(reason(ip).is_some(), "{ip} should be forbidden");
        }
        assert_eq!(
            reason("169.254.169.254"),
            Some("the cloud metadata address")
        );
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
            "::ffff:0:5db8:d822",
            "64:ff9b::93.184.216.34",
            "2002:5db8:d822::1",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(reason(ip), None, "{ip} should be allowed");
        }
    }
}
