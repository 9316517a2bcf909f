//! The layer the operator names in fetch plans comes from the registry, never from status:
//! whoever may edit a SkillSet's status must not be able to swap the bytes a verified digest
//! delivers.

mod support;

use skillport_operator::api::SkillSetSpec;
use skillport_operator::controller::resolve::{PullSecret, Resolver};
use skillport_operator::policy::Policies;
use skillport_testkit::Registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_is_read_from_the_registry_and_an_edited_status_is_not_believed() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let digest = support::push_skill(&registry, work.path(), "pdf", "1", "first").await;
    let image = format!("{}/skills/pdf:1", registry.host());
    let spec: SkillSetSpec = serde_json::from_value(serde_json::json!({
        "skills": [{"name": "pdf", "image": image}],
    }))
    .unwrap();
    let secret = || PullSecret {
        name: "regcred".to_owned(),
        config: std::fs::read(registry.docker_config(&work.path().join("auth"))).unwrap(),
    };
    let ca = vec![registry.ca_file().unwrap().to_path_buf()];
    let policies = Policies::default();

    let resolved = Resolver::new(ca.clone())
        .resolve(&spec, &[secret()], None, &policies, &[])
        .await
        .unwrap();
    assert_eq!(resolved[0].digest.as_deref(), Some(digest.as_str()));
    let layer = resolved[0].layer.clone().expect("the layer is read");
    let expected = support::publisher(&registry, work.path())
        .skill_layer(&format!("{image}@{digest}").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(layer.digest, expected.layer.digest.to_string());
    assert_eq!(layer.size, expected.layer.size);
    assert_eq!(layer.media_type, expected.layer.media_type);

    // The status says another layer for the same digest: a new operator (no cache) reads the
    // registry again and keeps the real one.
    let mut edited = resolved.clone();
    edited[0].layer.as_mut().unwrap().digest = format!("sha256:{}", "0".repeat(64));
    let again = Resolver::new(ca.clone())
        .resolve(&spec, &[secret()], None, &policies, &edited)
        .await
        .unwrap();
    assert_eq!(again[0].layer.as_ref(), Some(&layer));

    // A SkillSet held to image volumes has no fetch plan: no layer is read for it.
    let mut volumes = spec.clone();
    volumes.delivery = skillport_operator::api::Delivery::ImageVolume;
    let resolved = Resolver::new(ca)
        .resolve(&volumes, &[secret()], None, &policies, &[])
        .await
        .unwrap();
    assert_eq!(resolved[0].digest.as_deref(), Some(digest.as_str()));
    assert_eq!(resolved[0].layer, None);
}

/// An image with two layers (no skill can be read from it) resolves as before, with no layer
/// named: the init container reads its manifests and reports what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_no_skill_is_read_from_resolves_without_a_layer() {
    use skillport_oci::spec::{Descriptor, ImageManifest, media};

    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let store = skillport_oci::Store::open(&work.path().join("store")).unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (one, two) = (b"layer one".to_vec(), b"layer two".to_vec());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::of(media::IMAGE_CONFIG, config),
        layers: vec![
            Descriptor::of(media::LAYER_TAR_GZIP, &one),
            Descriptor::of(media::LAYER_TAR_GZIP, &two),
        ],
        annotations: std::collections::BTreeMap::new(),
        subject: None,
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let descriptor = Descriptor::of(media::IMAGE_MANIFEST, &bytes);
    let pending = vec![
        store.expect_bytes(&manifest.config, config).unwrap(),
        store.expect_bytes(&manifest.layers[0], &one).unwrap(),
        store.expect_bytes(&manifest.layers[1], &two).unwrap(),
        store.expect_bytes(&descriptor, &bytes).unwrap(),
    ];
    store
        .commit(pending, &[("two:1".to_owned(), descriptor.clone())])
        .unwrap();
    let image = format!("{}/skills/two:1", registry.host());
    support::publisher(&registry, work.path())
        .push(
            &store,
            &"two:1".parse().unwrap(),
            &image.parse().unwrap(),
            std::sync::Arc::new(skillport_registry::NoProgress),
        )
        .await
        .unwrap();
    let spec: SkillSetSpec = serde_json::from_value(serde_json::json!({
        "skills": [{"name": "two", "image": image}],
    }))
    .unwrap();
    let secret = PullSecret {
        name: "regcred".to_owned(),
        config: std::fs::read(registry.docker_config(&work.path().join("auth"))).unwrap(),
    };
    let resolved = Resolver::new(vec![registry.ca_file().unwrap().to_path_buf()])
        .resolve(&spec, &[secret], None, &Policies::default(), &[])
        .await
        .unwrap();
    assert_eq!(
        resolved[0].digest.as_deref(),
        Some(descriptor.digest.to_string().as_str())
    );
    assert_eq!(resolved[0].layer, None);
}
