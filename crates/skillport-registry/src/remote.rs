// A reference split the way the distribution API wants it.

use crate::request::Access;
use skillport_oci::Reference;

/// A reference split the way the distribution API wants it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `host[:port]`; `docker.io` when the reference names none.
    pub registry: String,
    /// The repository path; Docker Hub's official images get `library/`.
    pub repository: String,
    /// The tag or digest to ask for.
    pub reference: String,
    /// The reference as the user wrote it, for messages.
    pub display: String,
}

impl Remote {
    /// Splits `reference`; with neither tag nor digest, asks for `latest`.
    pub fn new(reference: &Reference) -> Remote {
        let registry = reference.registry().unwrap_or("docker.io").to_owned();
        let mut repository = reference.repository().to_owned();
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag_or_digest = match (reference.digest(), reference.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        Remote {
            registry,
            repository,
            reference: tag_or_digest,
            display: reference.to_string(),
        }
    }

    pub(crate) fn access<'a>(&'a self, actions: &'a str, what: &'a str) -> Access<'a> {
        Access {
            registry: &self.registry,
            repository: &self.repository,
            actions,
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_split_like_docker() {
        let r = Remote::new(&"alpine".parse().unwrap());
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("docker.io", "library/alpine", "latest")
        );
        let r = Remote::new(&"127.0.0.1:5000/skills/pdf:1.0".parse().unwrap());
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "skills/pdf", "1.0")
        );
    }
}
