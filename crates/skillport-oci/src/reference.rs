// Image references: `name[:tag][@digest]`, as docker and the distribution spec write them.
//
// Parsed by hand: the grammar is small and fixed by the distribution spec, and the crates
// that carry a parser (oci-client, oci-spec) bring network or unrelated weight into a crate
// that must stay pure. No Docker Hub normalisation happens here (`my-skill` stays `my-skill`,
// which is what a local store wants); the registry client adds it where it talks to Hub.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    name: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {text:?}: {reason}")]
pub struct ParseReferenceError {
    pub text: String,
    pub reason: &'static str,
}

impl Reference {
    /// The name: `[registry/]path`, e.g. `my-skill` or `registry.example.com/skills/pdf`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The registry host (with port), when the first component names one: it holds a `.` or a
    /// `:`, or is `localhost` — the rule docker uses.
    pub fn registry(&self) -> Option<&str> {
        let (first, _) = self.name.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }

    /// The repository path without the registry.
    pub fn repository(&self) -> &str {
        match self.registry() {
            Some(registry) => &self.name[registry.len() + 1..],
            None => &self.name,
        }
    }

    /// The key under which the local store records this reference: `name:tag`, or
    /// `name@digest` when only a digest was given, or `name:latest` when neither was.
    pub fn store_key(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.name),
            (None, Some(digest)) => format!("{}@{digest}", self.name),
            (None, None) => format!("{}:latest", self.name),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ParseReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseReferenceError {
            text: text.chars().take(300).collect(),
            reason,
        };
        if text.len() > 4096 {
            return Err(fail("longer than 4096 characters"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|_| fail("the part after @ is not a sha256/sha512 digest"))?,
                ),
            ),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(fail("the name is empty"));
        }
        if name.len() > 255 {
            return Err(fail("the name is longer than 255 characters"));
        }
        let mut components = name.split('/').peekable();
        let mut first = true;
        while let Some(component) = components.next() {
            let is_domain = first
                && components.peek().is_some()
                && (component.contains('.') || component.contains(':') || component == "localhost");
            let valid = if is_domain {
                valid_domain(component)
            } else {
                valid_path_component(component)
            };
            if !valid {
                return Err(fail(if is_domain {
                    "the registry host is not a valid host[:port]"
                } else {
                    "name components may only hold a-z, 0-9 and single separators (. _ __ -)"
                }));
            }
            first = false;
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(fail(
                "a tag is 1-128 characters of A-Z, a-z, 0-9, _ . - and cannot start with . or -",
            ));
        }
        Ok(Reference {
            name: name.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

fn valid_path_component(component: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(component: &str) -> bool {
    let (host, port) = match component.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (component, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let r: Reference = "my-skill:0.1.0".parse().unwrap();
        assert_eq!(
            (r.name(), r.tag(), r.registry()),
            ("my-skill", Some("0.1.0"), None)
        );
        assert_eq!(r.store_key(), "my-skill:0.1.0");

        let r: Reference = "127.0.0.1:5000/skills/pdf-tools".parse().unwrap();
        assert_eq!(r.registry(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository(), "skills/pdf-tools");
        assert_eq!(r.tag(), None);
        assert_eq!(r.store_key(), "127.0.0.1:5000/skills/pdf-tools:latest");

        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r: Reference = format!("registry.example.com/a/b:1@{digest}")
            .parse()
            .unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.digest().unwrap().to_string(), digest);
        assert_eq!(
            r.to_string(),
            format!("registry.example.com/a/b:1@{digest}")
        );
        let r: Reference = format!("localhost/x@{digest}").parse().unwrap();
        assert_eq!(r.store_key(), format!("localhost/x@{digest}"));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "My-Skill",
            "a//b",
            "-a",
            "a:",
            "a:-x",
            "a@sha256:short",
            "../x",
            "a/b c",
            "reg.io:port/x",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?}");
        }
    }
}
