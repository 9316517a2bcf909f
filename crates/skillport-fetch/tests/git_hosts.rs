//! Git credentials go only to the hosts their Secret names (issue 22, item 3): a SkillSet naming
//! `https://attacker.example/x.git` with another team's `gitAuthSecretRef` must not send the
//! token there. A recording HTTPS server answers every request 401 with a Basic challenge (what
//! makes a git client offer its credentials) and keeps each `Authorization` header it got.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::StreamExt as _;
use skillport_fetch::git::{self, GitCredentials, GitOptions, GitSource};
use skillport_registry::auth::Secret;
use skillport_testkit::{TestCa, TlsServer};

const TOKEN: &str = "team-token-7f3a9c";

/// A server that challenges every request and records the `Authorization` headers it gets.
async fn recording_server(ca: &TestCa) -> (TlsServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let router = Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(value) = headers.get(header::AUTHORIZATION) {
                record
                    .lock()
                    .unwrap()
                    .push(value.to_str().unwrap_or("?").to_owned());
            }
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            )
                .into_response()
        }
    });
    let server = TlsServer::start(router, &ca.issue_server(&["127.0.0.1"])).await;
    (server, seen)
}

/// Resolves (the operator's `ls-refs`) and fetches (the init container's) `url` with
/// `credentials`; both must fail, the server refusing everyone.
async fn try_both(url: &str, credentials: &GitCredentials, ca: &TestCa) {
    let source = GitSource {
        url: url.to_owned(),
        reference: "main".into(),
        path: None,
    };
    let options = GitOptions {
        ca_files: vec![ca.ca_file().to_path_buf()],
        timeout: std::time::Duration::from_secs(20),
        ..GitOptions::default()
    };
    let out = tempfile::tempdir().unwrap();
    let (source_2, credentials_2, options_2) =
        (source.clone(), credentials.clone(), options.clone());
    let resolved = tokio::task::spawn_blocking(move || {
        git::resolve(&source_2, Some(&credentials_2), &options_2)
    })
    .await
    .unwrap();
    assert!(
        resolved.is_err(),
        "resolving against a server refusing everyone worked"
    );
    let dest = out.path().join("skill");
    let credentials = credentials.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        git::fetch(&source, Some(&credentials), &dest, &options)
    })
    .await
    .unwrap();
    assert!(
        fetched.is_err(),
        "fetching from a server refusing everyone worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_token_is_never_sent_to_a_host_its_secret_does_not_name() {
    let ca = TestCa::new();
    let (server, seen) = recording_server(&ca).await;
    let url = format!("{}/org/skills.git", server.url());

    // The Secret is for git.example.com: the attacker's host gets no Authorization at all.
    let elsewhere =
        GitCredentials::new("x-access-token", Secret::new(TOKEN), "git.example.com").unwrap();
    try_both(&url, &elsewhere, &ca).await;
    let headers = seen.lock().unwrap().clone();
    assert!(
        headers.is_empty(),
        "a host the Secret does not name received credentials: {headers:?}"
    );

    // The control: bound to this host, the same token is offered (the recorder does see it).
    let here = GitCredentials::new(
        "x-access-token",
        Secret::new(TOKEN),
        &format!("127.0.0.1:{}", server.port()),
    )
    .unwrap();
    try_both(&url, &here, &ca).await;
    let headers = seen.lock().unwrap().clone();
    assert!(
        headers.iter().any(|h| h.starts_with("Basic ")),
        "the host the Secret names got no credentials (the recorder sees nothing?): {headers:?}"
    );
}

/// A `git://` server that answers with one long packet, a byte every 200 ms: each read gets
/// something well within the read timeout, so only a deadline on the whole listing ends it.
#[test]
fn a_git_server_dripping_bytes_is_cut_off_at_the_deadline() {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                // A pkt-line of 65,520 bytes is announced, then sent one byte at a time.
                if stream.write_all(b"fff0").is_err() {
                    return;
                }
                while stream.write_all(b"a").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            });
        }
    });
    let source = GitSource {
        url: format!("git://127.0.0.1:{port}/skills.git"),
        reference: "main".into(),
        path: None,
    };
    let options = GitOptions {
        timeout: std::time::Duration::from_secs(2),
        ..GitOptions::default()
    };
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(git::resolve(&source, None, &options));
    });
    // Far beyond the 2 s deadline: without one, the listing would go on for hours.
    let resolved = result
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("resolving against a dripping git:// server did not end at its deadline");
    let err = resolved.expect_err("a dripping server resolved a ref");
    assert!(
        matches!(err, git::GitError::Timeout { .. }),
        "want a timeout, naming the URL: {err:?}"
    );
}

/// An HTTPS git server whose ref advertisement never ends (issue 22, item 12): gix's HTTP
/// backend has no size limit, so the listing would fill memory at line speed until the deadline.
/// Every response body is counted against the listing cap (16 MiB), and the resolve stops there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_git_server_with_endless_refs_is_cut_off_at_the_listing_cap() {
    let ca = TestCa::new();
    // `<40 hex> refs/heads/r<n>\n` as pkt-lines, forever.
    let endless = || {
        futures_util::stream::iter(0u64..).map(|n| {
            let line = format!("{n:040x} refs/heads/r{n}\n");
            Ok::<_, std::io::Error>(format!("{:04x}{line}", line.len() + 4).into_bytes())
        })
    };
    let sent = Arc::new(Mutex::new(0u64));
    let count = sent.clone();
    let router = Router::new().fallback(move || {
        let count = count.clone();
        async move {
            let counted = endless().map(move |chunk| {
                if let Ok(bytes) = &chunk {
                    *count.lock().unwrap() += bytes.len() as u64;
                }
                chunk
            });
            (
                [(
                    header::CONTENT_TYPE,
                    "application/x-git-upload-pack-advertisement",
                )],
                axum::body::Body::from_stream(
                    futures_util::stream::once(async {
                        // The first ref carries the capabilities after a NUL.
                        let first = format!("{:040x} refs/heads/first\0side-band-64k\n", 1);
                        let first = format!("{:04x}{first}", first.len() + 4);
                        Ok::<_, std::io::Error>(
                            format!("001e# service=git-upload-pack\n0000{first}").into_bytes(),
                        )
                    })
                    .chain(counted),
                ),
            )
                .into_response()
        }
    });
    let server = TlsServer::start(router, &ca.issue_server(&["127.0.0.1"])).await;
    let source = GitSource {
        url: format!("{}/skills.git", server.url()),
        reference: "main".into(),
        path: None,
    };
    let options = GitOptions {
        ca_files: vec![ca.ca_file().to_path_buf()],
        timeout: std::time::Duration::from_secs(60),
        ..GitOptions::default()
    };
    let started = std::time::Instant::now();
    let resolved = tokio::task::spawn_blocking(move || git::resolve(&source, None, &options))
        .await
        .unwrap();
    let err = resolved.expect_err("an endless listing resolved a ref");
    let bytes_sent = *sent.lock().unwrap();
    assert!(
        format!("{err:?}").contains("more than we take"),
        "want the cap, not the deadline ({:?}, {bytes_sent} bytes sent): {err:?}",
        started.elapsed()
    );
    // What was read is the cap; the server got ahead of it by what the pipes hold.
    assert!(bytes_sent < 64 << 20, "{bytes_sent} bytes were taken");
}
