//! Handlers bundled with the embedding program, installed into the state directory.
//!
//! An agent (or the `handrail` CLI) ships handler artifacts inside its binary. On start it
//! writes each one into `<state>/handlers/` as `bundled-<vendor>-<name>-<major>.wasm` with
//! a registration `bundled-….toml` beside it, atomically and only when the content
//! changed, so the registry re-hashes them like any other handler. A device owner
//! overrides a bundled handler by registering the same id in a file of their own: the
//! bundled registration is then not written (and an old one is removed).

use std::fs;
use std::path::Path;

use crate::durable;
use crate::registry::{Capabilities, HandlerKind, Limits, Registration, hex};

/// A handler artifact carried by the embedding program.
#[derive(Debug, Clone)]
pub struct BundledHandler {
    /// Handler id, `vendor/name:major`.
    pub id: String,
    /// Artifact kind.
    pub kind: HandlerKind,
    /// Artifact bytes.
    pub artifact: &'static [u8],
    /// Capabilities granted by default.
    pub capabilities: Capabilities,
    /// Limits.
    pub limits: Limits,
}

fn stem(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("bundled-{safe}")
}

/// Writes (or refreshes) the bundled handlers' artifacts and registrations.
pub fn install(handlers_dir: &Path, bundled: &[BundledHandler]) -> Result<(), std::io::Error> {
    durable::create_dir_all(handlers_dir)?;
    // Ids the owner registered in files of their own take precedence.
    let own: Vec<String> = fs::read_dir(handlers_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".toml") && !name.starts_with("bundled-")
        })
        .filter_map(|e| {
            let text = fs::read_to_string(e.path()).ok()?;
            Registration::parse(&e.path(), &text).ok().map(|r| r.id)
        })
        .collect();
    for b in bundled {
        let stem = stem(&b.id);
        let ext = match b.kind {
            HandlerKind::Wasm => "wasm",
            HandlerKind::Native => "so",
            HandlerKind::InProcess => continue,
        };
        let reg_path = handlers_dir.join(format!("{stem}.toml"));
        let artifact_path = handlers_dir.join(format!("{stem}.{ext}"));
        if own.contains(&b.id) {
            durable::remove_file(&reg_path)?;
            durable::remove_file(&artifact_path)?;
            continue;
        }
        use sha2::Digest;
        let sum = hex(&sha2::Sha256::digest(b.artifact));
        let registration = Registration {
            id: b.id.clone(),
            kind: b.kind,
            artifact: format!("{stem}.{ext}").into(),
            sha256: sum.clone(),
            capabilities: b.capabilities.clone(),
            limits: b.limits.clone(),
            config: Default::default(),
            source: None,
        };
        let text = format!(
            "# Written by the program that bundles this handler; rewritten when it changes.\n# To override, register the same id in a file of your own.\n{}",
            toml::to_string(&registration).map_err(std::io::Error::other)?
        );
        if fs::read_to_string(&reg_path).ok().as_deref() == Some(text.as_str())
            && crate::registry::sha256_file(&artifact_path).ok().as_deref() == Some(sum.as_str())
        {
            continue;
        }
        // Artifact first: a registration never names an artifact that is not there yet.
        durable::write_atomic(&artifact_path, b.artifact)?;
        durable::write_atomic(&reg_path, text.as_bytes())?;
    }
    Ok(())
}

/// True when the registry's handler came from a bundled registration.
pub fn is_bundled(registration: &Registration) -> bool {
    registration
        .source
        .as_ref()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("bundled-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn installs_once_and_yields_to_the_owners_registration() {
        let dir = tempfile::tempdir().unwrap();
        let b = BundledHandler {
            id: "acme/thing:1".into(),
            kind: HandlerKind::Wasm,
            artifact: b"\0asm component bytes",
            capabilities: Capabilities::default(),
            limits: Limits::default(),
        };
        install(dir.path(), std::slice::from_ref(&b)).unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        let r = reg.get("acme/thing:1").unwrap();
        r.verify_artifact().unwrap();
        assert!(is_bundled(r));
        let modified = |name: &str| {
            fs::metadata(dir.path().join(name))
                .unwrap()
                .modified()
                .unwrap()
        };
        let stamps = (
            modified("bundled-acme-thing-1.toml"),
            modified("bundled-acme-thing-1.wasm"),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        install(dir.path(), std::slice::from_ref(&b)).unwrap();
        let again = (
            modified("bundled-acme-thing-1.toml"),
            modified("bundled-acme-thing-1.wasm"),
        );
        assert_eq!(again, stamps, "unchanged: nothing rewritten");

        fs::write(
            dir.path().join("mine.toml"),
            "id = \"acme/thing:1\"\nkind = \"in-process\"\n",
        )
        .unwrap();
        install(dir.path(), &[b]).unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        assert!(!is_bundled(reg.get("acme/thing:1").unwrap()));
    }
}
