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
use crate::registry::{Capabilities, HandlerKind, Limits, Registration, sha256_hex};

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

/// A handler id as a file name stem, safe in any folder: `microsoft/script:1` →
/// `microsoft-script-1`.
pub fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn stem(id: &str) -> String {
    format!("bundled-{}", file_stem(id))
}

/// The text of a registration file a program writes: `comment` (one `#` line each),
/// then the registration.
pub fn registration_text(comment: &str, registration: &Registration) -> std::io::Result<String> {
    let mut text: String = comment.lines().map(|l| format!("# {l}\n")).collect();
    text.push_str(&toml::to_string(registration).map_err(std::io::Error::other)?);
    Ok(text)
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
    remove_overridden(handlers_dir, &own)?;
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
        let sum = sha256_hex(b.artifact);
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
        let text = registration_text(
            "Written by the program that bundles this handler; rewritten when it changes.\nTo override, register the same id in a file of your own.",
            &registration,
        )?;
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

/// Removes the bundled registrations (and their artifacts) of ids in `own`, including
/// those of handlers this program does not bundle: written by another build (a full
/// build before a switch to the lean one, say), they would register the id twice.
fn remove_overridden(handlers_dir: &Path, own: &[String]) -> Result<(), std::io::Error> {
    for entry in fs::read_dir(handlers_dir)?.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_suffix(".toml")
            .filter(|s| s.starts_with("bundled-"))
        else {
            continue;
        };
        let overridden = fs::read_to_string(&path)
            .ok()
            .and_then(|text| Registration::parse(&path, &text).ok())
            .is_some_and(|r| own.contains(&r.id));
        if overridden {
            // The registration first: none ever names a missing artifact.
            durable::remove_file(&path)?;
            for ext in ["wasm", "so"] {
                durable::remove_file(&handlers_dir.join(format!("{stem}.{ext}")))?;
            }
        }
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

    /// A bundled `acme/thing:1`.
    fn thing() -> BundledHandler {
        BundledHandler {
            id: "acme/thing:1".into(),
            kind: HandlerKind::Wasm,
            artifact: b"\0asm component bytes",
            capabilities: Capabilities::default(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn installs_once_and_yields_to_the_owners_registration() {
        let dir = tempfile::tempdir().unwrap();
        let b = thing();
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

    #[test]
    fn an_owners_registration_retires_a_bundled_one_this_program_does_not_carry() {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), &[thing()]).unwrap();
        fs::write(
            dir.path().join("acme-thing-1.toml"),
            "id = \"acme/thing:1\"\nkind = \"in-process\"\n",
        )
        .unwrap();
        // A program bundling nothing (the lean build) opens the same folder.
        install(dir.path(), &[]).unwrap();
        let reg = Registry::load_dir(dir.path()).unwrap();
        assert!(!is_bundled(reg.get("acme/thing:1").unwrap()));
        assert!(!dir.path().join("bundled-acme-thing-1.wasm").exists());
    }
}
