//! Whether a URL a client hands the API points inside the network (server-side request
//! forgery, OWASP API7): a `format: uri` or `url` value that the upstream may fetch.
//!
//! A value is internal when it names a host the proxy's neighbours are: loopback,
//! unspecified, private (RFC 1918, unique-local `fc00::/7`), link-local (the cloud metadata
//! service at `169.254.169.254`, `fe80::/10`), shared (`100.64.0.0/10`), `localhost` and
//! its subdomains, or a cloud metadata name; or when it has an authority (`//`) and a
//! scheme other than `http` and `https` (`file://`, `gopher://`, `dict://`…). Every spelling
//! an URL parser accepts for an address counts: IPv4 in decimal, octal, hex or short forms
//! (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`), IPv4-mapped and -compatible IPv6,
//! percent-encoded hosts, user information, a trailing dot. A name that resolves to an
//! internal address (`127.0.0.1.nip.io`) cannot be told without DNS, which the proxy does
//! not do: that remains the upstream's egress policy to stop.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::contract::percent::hex_value;

/// Host names of cloud metadata services, beside the link-local address they resolve to.
const METADATA_HOSTS: [&str; 3] = ["metadata.google.internal", "metadata", "instance-data"];

/// Whether `value` is a URI (a scheme, then anything printable) pointing inside the
/// network. Values without an authority (`urn:`, `mailto:`) fetch nothing: not internal.
pub(crate) fn is_internal(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let Some(rest) = rest
        .strip_prefix("//")
        .or_else(|| rest.strip_prefix("\\\\"))
    else {
        return false;
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return true;
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    // User information is not the host: `http://public@10.0.0.1/`.
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let Some(host) = decoded(host) else {
        // A host that does not decode is no host an URL parser would fetch from.
        return true;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return true;
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return internal_v6(v6);
    }
    if let Some(v4) = ipv4(&host) {
        return internal_v4(v4);
    }
    host == "localhost" || host.ends_with(".localhost") || METADATA_HOSTS.contains(&host.as_str())
}

/// The host percent-decoded once, as URL parsers do; `None` if it is not UTF-8.
fn decoded(host: &str) -> Option<String> {
    let bytes = host.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| {
                Some((
                    hex_value(*bytes.get(i + 1)?)?,
                    hex_value(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An IPv4 address in any form the WHATWG URL standard accepts: one to four dot-separated
/// parts, each decimal, octal (`0` prefix) or hex (`0x`), the last filling the remaining
/// bytes (`127.1` is `127.0.0.1`, `2130706433` is too).
fn ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts.iter().map(|p| number(p)).collect::<Option<_>>()?;
    let (last, first) = numbers.split_last()?;
    if first.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (4 - first.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut address = *last;
    for (i, &n) in first.iter().enumerate() {
        address |= n << (24 - 8 * i as u32);
    }
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

fn number(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 20 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped().or_else(|| compatible(ip)) {
        return internal_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

/// `::a.b.c.d` (IPv4-compatible, deprecated but still parsed).
fn compatible(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1))
        .then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_found_in_every_spelling() {
        let internal = [
            "http://127.0.0.1/",
            "http://localhost:8080/x",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://10.1.2.3",
            "https://192.168.0.1:443/",
            "http://172.16.5.4/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::]/",
            "http://user:pass@10.0.0.1/",
            "http://public.example@127.0.0.1/",
            "http://%31%32%37.0.0.1/",
            "file:///etc/passwd",
            "gopher://public.example/_x",
            "dict://public.example:11211/",
            "HTTP://127.0.0.1/",
            "http:\\\\127.0.0.1\\",
            "http:///path",
        ];
        for value in internal {
            assert!(is_internal(value), "{value}");
        }
    }

    #[test]
    fn public_urls_and_uris_without_an_authority_pass() {
        let public = [
            "https://api.example.com/hook",
            "http://203.0.113.7:8080/",
            "http://[2001:db8::1]/",
            "https://8.8.8.8/",
            "urn:isbn:0451450523",
            "mailto:ada@example.com",
            "https://example.com/?next=http://127.0.0.1/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "not a uri",
        ];
        for value in public {
            assert!(!is_internal(value), "{value}");
        }
    }

    #[test]
    fn ipv4_forms_follow_the_url_standard() {
        assert_eq!(ipv4("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(ipv4("0x7f000001"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(ipv4("1.2.3.4.5"), None);
        assert_eq!(ipv4("256.1.1.1"), None);
        assert_eq!(ipv4("4294967296"), None);
        assert_eq!(ipv4("example"), None);
    }
}
