// Where credentials may go. A credential is issued for one origin — scheme, host and port, as
// browsers and go-containerregistry define it — and is sent to that origin only: not to an
// upload `Location` on another host, not to object storage a blob redirects to, and never over
// plain HTTP when it was issued over HTTPS.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// Scheme, host and port of a URL (the port made explicit: `https://r.io` is port 443).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`; `None` for URLs without a host (`data:`, `file:`), which never
    /// get credentials.
    pub(crate) fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of a base URL such as `https://registry.example.com:5000`.
    pub(crate) fn of_base(base: &str) -> Option<Origin> {
        Origin::of(&Url::parse(base).ok()?)
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Whether `registry` (`host[:port]` as written in references) is this machine: `localhost`,
/// or an IP address in 127.0.0.0/8 or `::1`. The host is parsed as an address, so
/// `127.corp.example` is a domain like any other.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let Ok(url) = Url::parse(&format!("http://{registry}/")) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let origin = |url: &str| Origin::of(&Url::parse(url).unwrap()).unwrap();
        assert_eq!(
            origin("https://r.io/v2/x"),
            origin("https://R.io:443/upload?x=1")
        );
        assert_ne!(origin("https://r.io/"), origin("http://r.io/"));
        assert_ne!(origin("https://r.io/"), origin("https://r.io:5000/"));
        assert_ne!(origin("https://r.io/"), origin("https://s3.r.io/"));
        assert!(origin("https://r.io/").is_https());
    }

    #[test]
    fn a_127_prefixed_domain_is_not_loopback() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST:80",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "127.corp.example",
            "127.corp.example:5000",
            "127.0.0.1.nip.io",
            "localhost.example.com",
            "registry.example.com:5000",
            "10.0.0.1:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
