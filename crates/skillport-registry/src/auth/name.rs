// Registry names as the keys of `auths` and `credHelpers` write them, and as references use them.

/// The key docker writes (and hands to credential helpers) for Docker Hub.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The name [`normalize_registry`] gives Docker Hub, whatever alias a file or reference uses.
pub const DOCKER_HUB: &str = "docker.io";

const DOCKER_HUB_ALIASES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Normalise an `auths` key or a registry name for matching.
///
/// - the scheme goes (`https://`, `http://`); a key written as a URL names a whole registry,
///   so its path goes too (`https://index.docker.io/v1/` → `docker.io`,
///   `https://reg.example.com/v2/` → `reg.example.com`) — docker matches URL keys by host
///   (`ConvertToHostname`) and containers/image strips the path of any key with a scheme;
/// - without a scheme the path stays, for path-scoped entries (`reg.example.com/team-a`, a
///   containers/image extension docker does not have), minus trailing `/`s and a lone `v1`/`v2`
///   API path (`index.docker.io/v1/`);
/// - the whole key is lowercased (hosts are case-insensitive; repository paths are lowercase by
///   the distribution spec), `host:port` is kept as written (`:443` is not dropped: docker
///   treats `reg` and `reg:443` as different registries);
/// - every Docker Hub alias (`index.docker.io`, `registry-1.docker.io`,
///   `registry.hub.docker.com`) becomes `docker.io`.
pub fn normalize_registry(key: &str) -> String {
    normalize(key, false)
}

/// A key of a legacy `.dockercfg` file: always a whole registry (containers/image drops the
/// path of every legacy key).
pub(crate) fn normalize_legacy_key(key: &str) -> String {
    normalize(key, true)
}

fn normalize(key: &str, host_only: bool) -> String {
    let key = key.trim().to_ascii_lowercase();
    let (rest, had_scheme) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (rest, true),
        None => (key.as_str(), false),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB
    } else {
        host
    };
    let path = if had_scheme || host_only {
        ""
    } else {
        path.trim_matches('/')
    };
    if path.is_empty() || path == "v1" || path == "v2" {
        host.to_owned()
    } else {
        // Collapse empty components (`reg//team`) so the key compares equal to what a reference
        // produces.
        let path: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        format!("{host}/{}", path.join("/"))
    }
}

/// The host part of a normalised key.
pub(crate) fn host_of(normalized: &str) -> &str {
    normalized
        .split_once('/')
        .map_or(normalized, |(host, _)| host)
}

/// The keys that may hold a credential for `registry/repository`, most specific first:
/// `reg/org/repo`, `reg/org`, `reg`.
pub(crate) fn scope_keys(registry: &str, repository: &str) -> Vec<String> {
    let host = normalize_registry(host_of(registry.trim()));
    let repository = repository.trim().trim_matches('/').to_ascii_lowercase();
    let mut keys = Vec::new();
    let parts: Vec<&str> = repository
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    for end in (1..=parts.len()).rev() {
        keys.push(format!("{host}/{}", parts[..end].join("/")));
    }
    keys.push(host);
    keys
}

/// The proper ancestors of a normalised key: `reg/a/b` → `reg/a`, `reg`.
pub(crate) fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    let mut end = key.len();
    std::iter::from_fn(move || {
        let at = key[..end].rfind('/')?;
        end = at;
        Some(&key[..at])
    })
}

/// What a credential helper receives on stdin for a registry: docker's own key for Docker Hub,
/// else the registry host as a reference names it.
pub(crate) fn helper_server_url(host: &str) -> String {
    if host == DOCKER_HUB {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_go_from_most_to_least_specific() {
        assert_eq!(
            scope_keys("Reg.Example.com:5000", "/team-a/tools/pdf/"),
            [
                "reg.example.com:5000/team-a/tools/pdf",
                "reg.example.com:5000/team-a/tools",
                "reg.example.com:5000/team-a",
                "reg.example.com:5000",
            ]
        );
        assert_eq!(scope_keys("index.docker.io", ""), ["docker.io"]);
    }

    #[test]
    fn ancestors_walk_up_the_path() {
        assert_eq!(ancestors("reg/a/b").collect::<Vec<_>>(), ["reg/a", "reg"]);
        assert_eq!(ancestors("reg").count(), 0);
    }

    #[test]
    fn legacy_keys_are_hosts() {
        assert_eq!(
            normalize_legacy_key("reg.example.com/team-a"),
            "reg.example.com"
        );
        assert_eq!(
            normalize_legacy_key("https://index.docker.io/v1/"),
            "docker.io"
        );
    }
}
