//! Signed manifests and payload verification through the whole pipeline: what is refused,
//! that nothing runs when it is, and what is kept aside for inspection.

mod common;

use std::fs;
use std::path::Path;

use base64::Engine as _;
use common::{Fixture, deploy};
use handrail::admit::MAX_QUARANTINED;
use handrail::config::{Config, RootKeyConfig};
use handrail::trust::sign::KeyPair;
use handrail::{AdmitOptions, DeploymentStatus, Runtime};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const RSA_ROOT: &str = include_str!("keys/rsa-root.pem");
const RSA_SIGNING: &str = include_str!("keys/rsa-signing.pem");

fn b64_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn file_entry(name: &str, bytes: &[u8]) -> Value {
    json!({"fileName": name, "sizeInBytes": bytes.len(), "hashes": {"sha256": b64_sha256(bytes)}})
}

/// Writes `pkg.json` and a detached child manifest (one apt step on `child-pkg.json`) into
/// the payload folder and returns the parent manifest naming both by hash.
fn parent_with_child(fx: &Fixture) -> Value {
    let pkg = b"parent package";
    let child_pkg = b"child package";
    fs::write(fx.payloads.join("pkg.json"), pkg).unwrap();
    fs::write(fx.payloads.join("child-pkg.json"), child_pkg).unwrap();
    let child = json!({
        "updateId": {"provider": "contoso", "name": "child", "version": "1.0"},
        "isDeployable": false,
        "compatibility": [{"manufacturer": "contoso", "model": "virtual-camera"}],
        "instructions": {"steps": [{
            "handler": "microsoft/apt:1", "files": ["c1"],
            "handlerProperties": {"installedCriteria": "child-1.0"}
        }]},
        "files": {"c1": file_entry("child-pkg.json", child_pkg)},
        "manifestVersion": "5.0",
        "createdDateTime": "2026-11-22T00:00:00Z"
    })
    .to_string();
    fs::write(fx.payloads.join("child.json"), &child).unwrap();
    json!({
        "updateId": {"provider": "contoso", "name": "signed", "version": "1.0"},
        "isDeployable": true,
        "compatibility": [{"manufacturer": "contoso", "model": "e2e"}],
        "instructions": {"steps": [
            {"handler": "microsoft/apt:1", "files": ["f1"],
             "handlerProperties": {"installedCriteria": "parent-1.0"}},
            {"type": "reference", "detachedManifestFileId": "d1"}
        ]},
        "files": {
            "f1": file_entry("pkg.json", pkg),
            "d1": file_entry("child.json", child.as_bytes())
        },
        "manifestVersion": "5.0",
        "createdDateTime": "2026-11-22T00:00:00Z"
    })
}

/// The delivered envelope of `manifest`, signed ADU's way (RS256 root and signing keys).
fn signed_envelope(manifest: &str) -> Vec<u8> {
    let root = KeyPair::from_pem(RSA_ROOT).unwrap();
    let signing = KeyPair::from_pem(RSA_SIGNING).unwrap();
    let sjwk = root
        .sign_key("root.1", &signing.public_jwk(Some("signing.1")))
        .unwrap();
    let signature = signing.sign_manifest(manifest.as_bytes(), &sjwk).unwrap();
    envelope(manifest, Some(&signature))
}

fn envelope(manifest: &str, signature: Option<&str>) -> Vec<u8> {
    let mut v = json!({"workflow": {"action": 3, "id": "job-1"}, "updateManifest": manifest});
    if let Some(s) = signature {
        v["updateManifestSignature"] = s.into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// Signing required (the default), trusting the RSA test root key as `root.1`.
fn signing_config(disallowed: &[&str]) -> Config {
    let root = KeyPair::from_pem(RSA_ROOT).unwrap();
    let mut config = Config::default();
    config.signing.root_keys.push(RootKeyConfig {
        kid: "root.1".into(),
        jwk: Some(
            root.public_jwk(None)
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
                .collect(),
        ),
        jwk_file: None,
        pem_file: None,
    });
    config.signing.disallowed_signing_keys = disallowed
        .iter()
        .map(|s| handrail::config::DisallowedSigningKey::Name(s.to_string()))
        .collect();
    config
}

async fn refusal(rt: &Runtime, manifest: &[u8], payloads: &Path, id: &str) -> String {
    let options = AdmitOptions {
        deployment_id: Some(id.into()),
        ..AdmitOptions::default()
    };
    match rt.deploy(manifest, payloads, options).await {
        Ok(d) => panic!("admitted: {:?}", d.finish().await),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_signed_envelope_with_a_hashed_child_deploys() {
    let mut fx = Fixture::new();
    fx.config = signing_config(&[]);
    let manifest = parent_with_child(&fx).to_string();
    let report = deploy(&fx.runtime(), &signed_envelope(&manifest), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:?}");
    assert!(!fx.calls().is_empty());
}

#[tokio::test]
async fn tampered_unsigned_and_disallowed_manifests_are_refused_before_anything_runs() {
    let mut fx = Fixture::new();
    fx.config = signing_config(&[]);
    let rt = fx.runtime();
    let manifest = parent_with_child(&fx).to_string();
    // The manifest string altered after signing: the signature no longer covers it.
    let genuine = signed_envelope(&manifest);
    let mut v: Value = serde_json::from_slice(&genuine).unwrap();
    v["updateManifest"] = manifest.replace("parent-1.0", "parent-6.6").into();
    let e = refusal(&rt, &serde_json::to_vec(&v).unwrap(), &fx.payloads, "a").await;
    assert!(e.contains("altered after signing"), "{e}");
    // No signature at all, as an envelope and as a plain manifest.
    let e = refusal(&rt, &envelope(&manifest, None), &fx.payloads, "b").await;
    assert!(e.contains("unsigned and signing is required"), "{e}");
    let e = refusal(&rt, manifest.as_bytes(), &fx.payloads, "c").await;
    assert!(e.contains("unsigned and signing is required"), "{e}");
    assert!(fx.calls().is_empty(), "{:?}", fx.calls());
    drop(rt);

    let mut fx2 = Fixture::new();
    fx2.config = signing_config(&["signing.1"]);
    let manifest = parent_with_child(&fx2).to_string();
    let e = refusal(
        &fx2.runtime(),
        &signed_envelope(&manifest),
        &fx2.payloads,
        "d",
    )
    .await;
    assert!(e.contains("signing key `signing.1` is disallowed"), "{e}");
    assert!(fx2.calls().is_empty());
}

#[tokio::test]
async fn children_are_trusted_only_through_their_hash_in_the_signed_parent() {
    let mut fx = Fixture::new();
    fx.config = signing_config(&[]);
    let rt = fx.runtime();
    let parent = parent_with_child(&fx);
    // The child altered on disk: its hash no longer matches the signed parent's entry.
    let child = fs::read_to_string(fx.payloads.join("child.json")).unwrap();
    fs::write(
        fx.payloads.join("child.json"),
        child.replace("child-1.0", "child-6.6"),
    )
    .unwrap();
    let e = refusal(
        &rt,
        &signed_envelope(&parent.to_string()),
        &fx.payloads,
        "a",
    )
    .await;
    assert!(e.contains("does not match the parent's files.d1"), "{e}");
    // A child named by updateId only has no hash to be trusted by.
    let by_id = String::from_utf8(common::example("parent-reference-step.json")).unwrap();
    let e = refusal(&rt, &signed_envelope(&by_id), &fx.payloads, "b").await;
    assert!(e.contains("referenced by updateId only"), "{e}");
    assert!(fx.calls().is_empty());
}

#[tokio::test]
async fn a_mismatching_payload_is_refused_named_and_kept_aside() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = parent_with_child(&fx).to_string();
    // Same size, other bytes.
    fs::write(fx.payloads.join("pkg.json"), b"parent pACkage").unwrap();
    let e = refusal(&rt, manifest.as_bytes(), &fx.payloads, "job-hash").await;
    let kept = fx.state.join("quarantine/job-hash/pkg.json");
    assert!(e.contains("payload file `pkg.json`"), "{e}");
    assert!(e.contains(&b64_sha256(b"parent pACkage")), "{e}");
    assert!(e.contains(&b64_sha256(b"parent package")), "{e}");
    assert!(
        e.contains(&format!("kept aside as {}", kept.display())),
        "{e}"
    );
    assert_eq!(fs::read(&kept).unwrap(), b"parent pACkage");
    // Another size.
    fs::write(fx.payloads.join("pkg.json"), b"longer parent package").unwrap();
    let e = refusal(&rt, manifest.as_bytes(), &fx.payloads, "job-size").await;
    assert!(e.contains("size 21 bytes (manifest: 14)"), "{e}");
    assert!(fx.state.join("quarantine/job-size/pkg.json").is_file());
    // Never success: the refusal is what history records, and nothing ran.
    let history = rt.history().unwrap();
    assert!(
        history
            .iter()
            .all(|h| h.report.status == DeploymentStatus::Rejected),
        "{history:?}"
    );
    assert!(fx.calls().is_empty());
    assert!(!fx.state.join("deployments/job-hash").exists());
}

#[tokio::test]
async fn the_quarantine_keeps_only_the_newest_deployments() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = parent_with_child(&fx).to_string();
    fs::write(fx.payloads.join("pkg.json"), b"parent pACkage").unwrap();
    for i in 0..MAX_QUARANTINED + 3 {
        refusal(&rt, manifest.as_bytes(), &fx.payloads, &format!("job-{i}")).await;
        // Distinct modification times, oldest first, a second apart: the test's clock,
        // not the file system's granularity.
        let made = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
        fs::File::open(fx.state.join(format!("quarantine/job-{i}")))
            .and_then(|folder| folder.set_modified(made))
            .unwrap();
    }
    let mut kept: Vec<String> = fs::read_dir(fx.state.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    let newest: Vec<String> = (3..MAX_QUARANTINED + 3)
        .map(|i| format!("job-{i}"))
        .collect();
    assert_eq!(kept, newest);
}

#[tokio::test]
async fn payload_names_that_leave_the_payload_folder_and_symlinks_are_refused() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let mut manifest = parent_with_child(&fx);
    manifest["files"]["f1"]["fileName"] = "../../etc/passwd".into();
    let e = refusal(&rt, manifest.to_string().as_bytes(), &fx.payloads, "a").await;
    assert!(e.contains("files.f1.fileName"), "{e}");
    assert!(e.contains("contains `/`"), "{e}");

    let manifest = parent_with_child(&fx);
    fs::remove_file(fx.payloads.join("pkg.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fx.payloads.join("pkg.json")).unwrap();
    let e = refusal(&rt, manifest.to_string().as_bytes(), &fx.payloads, "b").await;
    assert!(e.contains("is not a regular file"), "{e}");
    assert!(fx.calls().is_empty());
}

#[tokio::test]
async fn a_child_expanding_past_the_step_limit_is_refused() {
    let fx = Fixture::new();
    let cameras: Vec<Value> = (0..11)
        .map(|i| {
            json!({"id": format!("cam-{i}"), "name": format!("c{i}"), "group": "cameras",
            "manufacturer": "contoso", "model": "virtual-camera"})
        })
        .collect();
    fs::write(
        fx.state.parent().unwrap().join("components.json"),
        json!({"components": cameras}).to_string(),
    )
    .unwrap();
    let mut child: Value =
        serde_json::from_slice(&common::example("child-three-script-steps.json")).unwrap();
    let step = child["instructions"]["steps"][0].clone();
    child["instructions"]["steps"] = (0..1000)
        .map(|i| {
            let mut s = step.clone();
            s["handlerProperties"]["installedCriteria"] = format!("criteria-{i}").into();
            s
        })
        .collect();
    fs::write(
        fx.payloads
            .join("contoso.virtual-camera.1.2.importmanifest.json"),
        child.to_string(),
    )
    .unwrap();
    let parent = common::example("parent-reference-step.json");
    let e = refusal(&fx.runtime(), &parent, &fx.payloads, "big").await;
    assert!(e.contains("more than 10000 step runs"), "{e}");
    assert!(fx.calls().is_empty());
}
