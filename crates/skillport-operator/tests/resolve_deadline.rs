//! A registry that stalls on purpose (issue 22, item 12): it answers the manifest request with
//! headers and then one byte now and then, each within the read timeout. One skill's resolve
//! ends at its deadline with a transient failure naming the skill; the others are not held up.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use skillport_operator::api::SkillSetSpec;
use skillport_operator::controller::resolve::Resolver;

/// A plain-HTTP "registry" on 127.0.0.1 that drips every answer.
fn dripping_registry() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4000000\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                while stream.write_all(b" ").is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_registry_fails_one_skill_at_its_deadline() {
    let port = dripping_registry();
    let spec: SkillSetSpec = serde_json::from_value(serde_json::json!({
        "skills": [{"name": "stalled", "image": format!("127.0.0.1:{port}/skills/x:1")}],
    }))
    .unwrap();
    let resolver = Resolver::new(Vec::new()).with_skill_deadline(Duration::from_secs(2));
    // Without a deadline a drip holds the resolve for ever (each read gets a byte in time).
    let policies = skillport_operator::policy::Policies::default();
    let resolve = resolver.resolve(&spec, &[], None, &policies, &[]);
    let failure = tokio::time::timeout(Duration::from_secs(60), resolve)
        .await
        .expect("the resolve was not cut off at its deadline")
        .expect_err("a stalling registry resolved");
    assert_eq!(failure.skill, "stalled");
    assert!(failure.transient, "{failure:?}");
    assert!(
        failure.message.contains("longer than 2s"),
        "{}",
        failure.message
    );
}
