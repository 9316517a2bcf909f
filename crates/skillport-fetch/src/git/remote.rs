// Talking to the git server: checking the URL and ref, connecting, fetching one ref shallowly
// into a temporary bare repository, and peeling it to a commit.
//
// Transports are built here rather than by `gix::Remote::connect`: `git://` gets socket read
// and write timeouts (gix's own has none), HTTP(S) gets reqwest with our CA files and timeouts,
// and no other scheme can reach gix (its `ssh` and `file` transports run programs).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use gix::ObjectId;
use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::protocol::fetch::refmap::SpecIndex;
use gix::protocol::transport::Protocol;
use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::client::blocking_io::http;
use gix::protocol::transport::client::git::ConnectMode;
use gix::remote::Direction;
use gix::remote::fetch::{Shallow, Tags};
use gix::url::Scheme;

use super::{GitCredentials, GitError, GitOptions, GitSource, Limit};

/// The longest we wait for one TCP connection, within the overall timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A source, checked: the URL to connect to and the refspecs to ask for.
pub(super) struct Target {
    /// For messages: no userinfo, no query.
    pub display_url: String,
    url: gix::Url,
    pub reference: String,
    /// Refspecs (no destination) in order of preference; exactly one for a SHA.
    refspecs: Vec<String>,
}

impl Target {
    pub fn new(source: &GitSource, with_credentials: bool) -> Result<Target, GitError> {
        let display_url = redact_url(&source.url);
        let refuse = |reason: &str| GitError::Url {
            url: display_url.clone(),
            reason: reason.into(),
        };
        // gix's parse errors quote the input, which may hold a password: say less.
        let url = gix::url::parse(gix::bstr::BStr::new(source.url.trim()))
            .map_err(|_| refuse("it cannot be parsed as a URL"))?;
        match url.scheme {
            Scheme::Http if with_credentials => {
                return Err(refuse(
                    "credentials are only sent over https, and this URL is plain http",
                ));
            }
            Scheme::Https | Scheme::Http | Scheme::Git => {}
            Scheme::Ssh => {
                return Err(refuse(
                    "ssh is not supported (it needs the ssh program); use https with a token",
                ));
            }
            Scheme::File => return Err(refuse("local repositories are not supported")),
            _ => {
                return Err(refuse(
                    "only https://, http:// and git:// URLs are supported",
                ));
            }
        }
        if url.user().is_some() || url.password().is_some() {
            return Err(refuse(
                "it holds a user name or password; put credentials in a mounted Secret",
            ));
        }
        if url.host().is_none_or(str::is_empty) {
            return Err(refuse("it has no host"));
        }
        let refspecs = refspecs(&source.reference).map_err(|reason| GitError::Ref {
            url: display_url.clone(),
            reference: source.reference.clone(),
            reason: reason.into(),
        })?;
        Ok(Target {
            display_url,
            url,
            reference: source.reference.clone(),
            refspecs,
        })
    }

    fn is_sha(&self) -> bool {
        is_full_sha(&self.reference)
    }
}

/// Whether `reference` is a full SHA-1 (then it is fetched as an object id, never as a name).
pub(super) fn is_full_sha(reference: &str) -> bool {
    reference.len() == 40 && reference.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn refspecs(reference: &str) -> Result<Vec<String>, &'static str> {
    if is_full_sha(reference) {
        return Ok(vec![reference.to_ascii_lowercase()]);
    }
    if reference.is_empty() {
        return Err("it is empty");
    }
    // Refspec syntax that a ref name must not smuggle in: force (`+`), negation (`^`),
    // a destination (`:`) and globs.
    if reference.starts_with(['+', '^', '-']) || reference.contains([':', '*']) {
        return Err("it is not a ref name");
    }
    gix::validate::reference::name_partial(reference.into())
        .map_err(|_| "it is not a valid ref name")?;
    Ok(if reference == "HEAD" || reference.starts_with("refs/") {
        vec![reference.to_owned()]
    } else {
        vec![
            format!("refs/tags/{reference}"),
            format!("refs/heads/{reference}"),
        ]
    })
}

/// `url` without `user:password@`, query or fragment, for messages.
pub(super) fn redact_url(url: &str) -> String {
    let url = url.trim();
    let url = url.find(['?', '#']).map_or(url, |end| &url[..end]);
    let (prefix, rest) = match url.find("://") {
        Some(index) => url.split_at(index + 3),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{prefix}{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// An empty bare repository at `path` that reads no configuration but its own and no
/// environment variables, and never runs `git` to find the installation's config.
pub(super) fn init_repository(path: &Path) -> Result<gix::Repository, GitError> {
    let options = gix::open::Options::isolated().config_overrides([format!(
        "gitoxide.userAgent=skillport/{}",
        env!("CARGO_PKG_VERSION")
    )]);
    gix::ThreadSafeRepository::init_opts(
        path,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        options,
    )
    .map(|repo| repo.to_thread_local())
    .map_err(|err| GitError::Repository {
        action: "creating a temporary repository",
        path: path.to_path_buf(),
        reason: describe(&err),
    })
}

/// Why the watchdog interrupted the fetch.
const TRIPPED_NONE: u8 = 0;
const TRIPPED_TIMEOUT: u8 = 1;
const TRIPPED_TOO_LARGE: u8 = 2;

/// Fetches the target's ref (depth 1, no tags) into `repo` and returns the commit it peels to.
pub(super) fn fetch_commit(
    repo: &gix::Repository,
    target: &Target,
    credentials: Option<&GitCredentials>,
    options: &GitOptions,
) -> Result<ObjectId, GitError> {
    let interrupt = AtomicBool::new(false);
    let tripped = AtomicU8::new(TRIPPED_NONE);
    let deadline = Instant::now() + options.timeout;
    let pack_dir = repo.path().join("objects").join("pack");
    let (stop, stopped) = mpsc::channel::<()>();

    let result = thread::scope(|scope| {
        let (interrupt, tripped, pack_dir) = (&interrupt, &tripped, &pack_dir);
        scope.spawn(move || {
            watchdog(
                &stopped,
                deadline,
                pack_dir,
                options.max_download_bytes,
                interrupt,
                tripped,
            );
        });
        let result = fetch_ref(repo, target, credentials, options, Some(interrupt));
        drop(stop);
        result
    });
    // A socket or HTTP timeout ends the fetch at about the deadline too, before the watchdog
    // looks; a pack small enough to arrive between two looks is measured here.
    let timed_out = tripped.load(Ordering::SeqCst) == TRIPPED_TIMEOUT || Instant::now() >= deadline;
    let too_large = tripped.load(Ordering::SeqCst) == TRIPPED_TOO_LARGE
        || folder_bytes(&pack_dir) > options.max_download_bytes;
    match result {
        Err(_) if timed_out => Err(GitError::Timeout {
            url: target.display_url.clone(),
            timeout: options.timeout,
        }),
        _ if too_large => Err(GitError::TooLarge {
            url: target.display_url.clone(),
            what: Limit::Download,
            limit: options.max_download_bytes,
        }),
        result => result,
    }
}

/// What the target's ref peels to on the server (`ls-refs` only, no pack): a commit for branches
/// and tags that point at commits. A full SHA is returned as given, without asking.
pub(super) fn resolve_commit(
    repo: &gix::Repository,
    target: &Target,
    credentials: Option<&GitCredentials>,
    options: &GitOptions,
) -> Result<ObjectId, GitError> {
    let started = Instant::now();
    match fetch_ref(repo, target, credentials, options, None) {
        Err(_) if started.elapsed() >= options.timeout => Err(GitError::Timeout {
            url: target.display_url.clone(),
            timeout: options.timeout,
        }),
        result => result,
    }
}

/// Lists the target's ref and, given `interrupt`, fetches it and peels it to a commit; without,
/// returns the id the server peeled it to.
fn fetch_ref(
    repo: &gix::Repository,
    target: &Target,
    credentials: Option<&GitCredentials>,
    options: &GitOptions,
    interrupt: Option<&AtomicBool>,
) -> Result<ObjectId, GitError> {
    let local = |action: &'static str| {
        move |err: gix::Error| GitError::Repository {
            action,
            path: repo.path().to_path_buf(),
            reason: describe(&err),
        }
    };
    let remote = repo
        .remote_at_without_url_rewrite(target.url.clone())
        .and_then(|remote| {
            remote.with_refspecs(target.refspecs.iter().map(String::as_str), Direction::Fetch)
        })
        .map_err(local("setting up the remote"))?
        .with_fetch_tags(Tags::None);
    // The ref listing alone (no pack) may take a fraction of what a fetch may.
    let cap = if interrupt.is_some() {
        options.max_download_bytes.saturating_add(MAX_LISTING_BYTES)
    } else {
        MAX_LISTING_BYTES
    };
    let (transport, _deadline) = connect(target, options, cap)?;
    let connection = remote
        .to_connection_with_transport(transport)
        .with_credentials(move |action| Ok(answer(credentials, action)))
        .with_transport_options(Box::new(http_options(options, credentials.is_some())?));

    let prepare = connection
        .prepare_fetch(
            gix::progress::Discard,
            gix::remote::ref_map::Options::default(),
        )
        .map_err(|err| handshake_error(target, credentials.is_some(), &err))?;
    let mappings = &prepare.ref_map().mappings;
    let found = (0..target.refspecs.len()).find_map(|index| {
        mappings
            .iter()
            .find(|mapping| mapping.spec_index == SpecIndex::ExplicitInRemote(index))
    });
    let not_found = || GitError::RefNotFound {
        url: target.display_url.clone(),
        reference: target.reference.clone(),
    };
    let Some(interrupt) = interrupt else {
        return found
            .and_then(|mapping| mapping.remote.peeled_id())
            .map(ToOwned::to_owned)
            .ok_or_else(not_found);
    };
    let wanted = found
        .and_then(|mapping| mapping.remote.as_id())
        .map(ToOwned::to_owned)
        .ok_or_else(not_found)?;

    let depth = std::num::NonZeroU32::new(1).expect("1 is not 0");
    prepare
        .with_shallow(Shallow::DepthAtRemote(depth))
        .receive(gix::progress::Discard, interrupt)
        .map_err(|err| {
            let reason = describe(&err);
            if target.is_sha() && reason.contains("not our ref") {
                GitError::RefNotFound {
                    url: target.display_url.clone(),
                    reference: target.reference.clone(),
                }
            } else {
                GitError::Fetch {
                    url: target.display_url.clone(),
                    reference: target.reference.clone(),
                    reason,
                }
            }
        })?;

    let not_a_commit = |reason: String| GitError::NotACommit {
        url: target.display_url.clone(),
        reference: target.reference.clone(),
        reason,
    };
    let object = repo
        .find_object(wanted)
        .map_err(|err| not_a_commit(describe(&err)))?;
    let kind = object.kind;
    let commit = object
        .peel_to_kind(gix::object::Kind::Commit)
        .map_err(|_| not_a_commit(format!("it names a {kind}")))?;
    Ok(commit.id)
}

/// The credential callback: our one credential for any `Get`, nothing stored or erased.
fn answer(credentials: Option<&GitCredentials>, action: Action) -> Option<Outcome> {
    match (action, credentials) {
        (Action::Get(context), Some(credentials)) => Some(Outcome {
            identity: gix::sec::identity::Account {
                username: credentials.username.clone(),
                password: credentials.password.expose().to_owned(),
                oauth_refresh_token: None,
            },
            next: context.into(),
        }),
        _ => None,
    }
}

/// The most a server may send for a ref listing (`ls-refs`): a hostile one could send refs
/// without end.
const MAX_LISTING_BYTES: u64 = 16 << 20;

/// The transport for `target`. Over `git://` (a raw socket, whose timeouts are per read) it also
/// returns a guard that shuts the socket down at the deadline, so a server dripping a byte now
/// and then cannot hold us past [`GitOptions::timeout`], and the socket reads at most `cap`
/// bytes. Over HTTP, reqwest's whole-request timeout does the same.
fn connect(
    target: &Target,
    options: &GitOptions,
    cap: u64,
) -> Result<(Box<dyn Transport + Send>, Option<SocketDeadline>), GitError> {
    let url = &target.url;
    if url.scheme != Scheme::Git {
        // reqwest is built with `rustls-no-provider`: ring must be the process provider before
        // its first client is built. A second install is harmless and returns an error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let capped = CappedHttp {
            inner: http::reqwest::Remote::default(),
            left: Arc::new(AtomicU64::new(cap)),
        };
        let transport = http::connect_http(capped, url.clone(), Protocol::V2, false);
        return Ok((Box::new(transport), None));
    }
    let host = url.host().expect("checked in Target::new");
    let port = url.port.unwrap_or(9418);
    let fail = |reason: String| GitError::Connect {
        url: target.display_url.clone(),
        reason,
    };
    let addresses = (host, port)
        .to_socket_addrs()
        .map_err(|err| fail(format!("cannot resolve {host}: {err}")))?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    let stream = addresses
        .into_iter()
        .find_map(|address| {
            TcpStream::connect_timeout(&address, options.timeout.min(CONNECT_TIMEOUT))
                .map_err(|err| last = err)
                .ok()
        })
        .ok_or_else(|| fail(last.to_string()))?;
    let socket_error = |err: io::Error| fail(err.to_string());
    stream
        .set_read_timeout(Some(options.timeout))
        .map_err(socket_error)?;
    stream
        .set_write_timeout(Some(options.timeout))
        .map_err(socket_error)?;
    let write = stream.try_clone().map_err(socket_error)?;
    let deadline = shut_at(
        stream.try_clone().map_err(socket_error)?,
        Instant::now() + options.timeout,
    );
    let read = Capped {
        inner: stream,
        left: cap,
    };
    let transport = gix::protocol::transport::client::git::blocking_io::Connection::new(
        read,
        write,
        Protocol::V2,
        url.path.clone(),
        Some((host.to_owned(), url.port)),
        ConnectMode::Daemon,
        false,
    );
    Ok((Box::new(transport), Some(deadline)))
}

/// Held while a `git://` socket is in use: dropping it ends the thread waiting for the deadline.
type SocketDeadline = mpsc::Sender<()>;

/// Shuts `stream` down at `deadline` unless the returned guard is dropped first (then the
/// thread ends at once). Every read and write on the socket fails from then on.
fn shut_at(stream: TcpStream, deadline: Instant) -> SocketDeadline {
    let (done, wait) = mpsc::channel::<()>();
    thread::spawn(move || {
        let left = deadline.saturating_duration_since(Instant::now());
        if wait.recv_timeout(left) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    done
}

/// A reader that fails once `left` bytes were read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(
                "the server sent more than we take for this",
            ));
        }
        let most = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let read = self.inner.read(&mut buf[..most])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// gix's reqwest backend with every response body (the ref listing, then the pack) counted
/// against one cap, as the `git://` socket is: within the deadline a hostile server could
/// otherwise stream refs into memory at line speed. Written here because gix's HTTP options
/// have no size limit; the rest is gix's own backend, unchanged.
struct CappedHttp {
    inner: http::reqwest::Remote,
    left: Arc<AtomicU64>,
}

impl http::Http for CappedHttp {
    type Headers = <http::reqwest::Remote as http::Http>::Headers;
    type ResponseBody = CappedBody<<http::reqwest::Remote as http::Http>::ResponseBody>;
    type PostBody = <http::reqwest::Remote as http::Http>::PostBody;

    fn get(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> gix::Result<http::GetResponse<Self::Headers, Self::ResponseBody>> {
        let response = self.inner.get(url, base_url, headers)?;
        Ok(http::GetResponse {
            headers: response.headers,
            body: self.capped(response.body),
        })
    }

    fn post(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
        body: http::PostBodyDataKind,
    ) -> gix::Result<http::PostResponse<Self::Headers, Self::ResponseBody, Self::PostBody>> {
        let response = self.inner.post(url, base_url, headers, body)?;
        Ok(http::PostResponse {
            post_body: response.post_body,
            headers: response.headers,
            body: self.capped(response.body),
        })
    }

    fn configure(&mut self, config: &dyn std::any::Any) -> gix::Result {
        self.inner.configure(config)
    }

    fn redirected_base_url(&self) -> Option<String> {
        self.inner.redirected_base_url()
    }
}

impl CappedHttp {
    fn capped<R>(&self, inner: R) -> CappedBody<R> {
        CappedBody {
            inner,
            left: self.left.clone(),
        }
    }
}

/// A response body that fails once the transport's cap is used up.
struct CappedBody<R> {
    inner: R,
    left: Arc<AtomicU64>,
}

impl<R: io::BufRead> io::Read for CappedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = io::BufRead::fill_buf(self)?;
        let read = available.len().min(buf.len());
        buf[..read].copy_from_slice(&available[..read]);
        io::BufRead::consume(self, read);
        Ok(read)
    }
}

impl<R: io::BufRead> io::BufRead for CappedBody<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let left = self.left.load(Ordering::Relaxed);
        let available = self.inner.fill_buf()?;
        if left == 0 && !available.is_empty() {
            return Err(io::Error::other(
                "the server sent more than we take for this",
            ));
        }
        let most = usize::try_from(left).unwrap_or(usize::MAX);
        Ok(&available[..available.len().min(most)])
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        let amount = amount as u64;
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(amount))
            });
    }
}

/// HTTP transport options: timeouts, our CA files and the TLS switch, applied to gix's reqwest
/// client as it is built. With credentials, redirects are not followed: gix would send the
/// credentials on to wherever the server points, and they are meant for the URL's host only.
fn http_options(options: &GitOptions, with_credentials: bool) -> Result<http::Options, GitError> {
    let mut roots = Vec::new();
    for path in &options.ca_files {
        let fail = |reason: String| GitError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|err| fail(format!("cannot read it: {err}")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|err| fail(format!("not a PEM certificate bundle: {err}")))?;
        if certificates.is_empty() {
            return Err(fail("no PEM certificate in it".into()));
        }
        roots.extend(certificates);
    }
    let timeout = options.timeout;
    let insecure = options.insecure_skip_tls_verify;
    let configure_client = move |builder: reqwest::blocking::ClientBuilder| -> gix::Result<_> {
        let mut builder = builder
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .timeout(timeout)
            .user_agent(concat!("skillport/", env!("CARGO_PKG_VERSION")));
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots.clone());
        }
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    };
    Ok(http::Options {
        follow_redirects: if with_credentials {
            http::options::FollowRedirects::None
        } else {
            http::options::FollowRedirects::Initial
        },
        connect_timeout: Some(timeout.min(CONNECT_TIMEOUT)),
        user_agent: Some(concat!("skillport/", env!("CARGO_PKG_VERSION")).into()),
        backend: Some(Arc::new(Mutex::new(http::reqwest::Options {
            configure_client: Some(Box::new(configure_client)),
            configure_request: None,
        }))),
        ..http::Options::default()
    })
}

/// Maps a failed handshake or ref listing: authentication, or anything else as a connection
/// problem.
fn handshake_error(target: &Target, with_credentials: bool, err: &gix::Error) -> GitError {
    let reason = describe(err);
    let unauthenticated = err.classify().is_unauthenticated()
        || err.classify().is_permission_denied()
        || reason.contains("No credentials were returned");
    if unauthenticated {
        return GitError::Auth {
            url: target.display_url.clone(),
            reason: if with_credentials {
                "the credentials were not accepted".into()
            } else {
                "the server asks for credentials and none were given".into()
            },
            with_credentials,
        };
    }
    GitError::Connect {
        url: target.display_url.clone(),
        reason,
    }
}

/// A gix error as one line: each distinct message in its chain, outermost first, without the
/// wrappers that only say where it happened.
fn describe(err: &gix::Error) -> String {
    const NOISE: [&str; 2] = [
        "Transport handshake failed",
        "An IO error occurred when talking to the server",
    ];
    let mut parts: Vec<String> = Vec::new();
    for error in err.iter_errors() {
        let text = error.to_string();
        if !text.is_empty()
            && !NOISE.contains(&text.as_str())
            && !parts.iter().any(|part| part.contains(&text))
        {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// Interrupts the fetch (sets `interrupt`) at `deadline` or once the pack files in `pack_dir`
/// pass `max_bytes`, saying which in `tripped`; returns when `stopped` disconnects.
fn watchdog(
    stopped: &mpsc::Receiver<()>,
    deadline: Instant,
    pack_dir: &Path,
    max_bytes: u64,
    interrupt: &AtomicBool,
    tripped: &AtomicU8,
) {
    let trip = |why| {
        tripped.store(why, Ordering::SeqCst);
        interrupt.store(true, Ordering::SeqCst);
    };
    loop {
        match stopped.recv_timeout(Duration::from_millis(50)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= deadline {
            return trip(TRIPPED_TIMEOUT);
        }
        if folder_bytes(pack_dir) > max_bytes {
            return trip(TRIPPED_TOO_LARGE);
        }
    }
}

/// Bytes of the files directly in `dir` (0 if it cannot be read).
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|metadata| metadata.len())
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_query() {
        assert_eq!(
            redact_url("https://user:hunter2@example.com/org/repo.git?token=x#frag"),
            "https://example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://tok@en@example.com:8443/a@b"),
            "https://example.com:8443/a@b"
        );
        assert_eq!(
            redact_url("git://example.com/repo"),
            "git://example.com/repo"
        );
        assert_eq!(redact_url("git@github.com:org/repo"), "github.com:org/repo");
    }

    #[test]
    fn refspecs_by_kind_of_ref() {
        let sha = "0123456789abcdef0123456789ABCDEF01234567";
        assert_eq!(refspecs(sha).unwrap(), [sha.to_ascii_lowercase()]);
        assert_eq!(
            refspecs("v1.2").unwrap(),
            ["refs/tags/v1.2", "refs/heads/v1.2"]
        );
        assert_eq!(refspecs("refs/heads/main").unwrap(), ["refs/heads/main"]);
        assert_eq!(refspecs("HEAD").unwrap(), ["HEAD"]);
        for bad in ["", "+main", "^main", "a:b", "a*", "a..b", "a b", "-x"] {
            assert!(refspecs(bad).is_err(), "{bad:?} should be refused");
        }
    }

    fn source(url: &str) -> GitSource {
        GitSource {
            url: url.into(),
            reference: "main".into(),
            path: None,
        }
    }

    #[test]
    fn refuses_urls_that_need_programs_or_hold_secrets() {
        for url in [
            "ssh://git@example.com/repo.git",
            "git@example.com:repo.git",
            "file:///srv/repo.git",
            "/srv/repo.git",
            "https://user:hunter2@example.com/repo.git",
            "https://ghp_token@example.com/repo.git",
        ] {
            let err = Target::new(&source(url), false).err().expect(url);
            let text = err.to_string();
            assert!(matches!(err, GitError::Url { .. }), "{url}: {text}");
            assert!(
                !text.contains("hunter2") && !text.contains("ghp_token"),
                "{text}"
            );
        }
        assert!(Target::new(&source("http://example.com/repo.git"), true).is_err());
        assert!(Target::new(&source("http://example.com/repo.git"), false).is_ok());
        assert!(Target::new(&source("https://example.com/repo.git"), true).is_ok());
        assert!(Target::new(&source("git://example.com/repo.git"), false).is_ok());
    }
}
