//! `handrail conform` (the conformance kit over one handler) and `handrail new-handler`
//! (a copy of the vendor template, `sdk/template`, under a new id).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use handrail::registry::is_valid_handler_id;
use handrail_conformance::{Kit, Profile};

use crate::exit::{self, Failure};

/// Runs the kit over `handler` (an artifact or a registration) and prints the report:
/// a summary, or JSON with `json`; `junit` also gets a JUnit XML file.
pub async fn conform(
    handler: &Path,
    profile: Option<&Path>,
    junit: Option<&Path>,
    cache_dir: Option<&Path>,
    json: bool,
) -> Result<u8, Failure> {
    let mut kit = Kit::from_path(handler)?;
    if let Some(path) = profile {
        kit = kit.profile(Profile::load(path)?);
    }
    if let Some(dir) = cache_dir {
        kit = kit.cache_dir(dir);
    }
    let report = kit.run_async().await?;
    if let Some(path) = junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))
            .map_err(Failure::bad_input)?;
    }
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_human());
    }
    Ok(if report.passed() {
        exit::SUCCESS
    } else {
        exit::NONCONFORMING
    })
}

const TEMPLATE_MANIFEST: &str = include_str!("../../../sdk/template/Cargo.toml");
const TEMPLATE_LIB: &str = include_str!("../../../sdk/template/src/lib.rs");
const TEMPLATE_PROFILE: &str = include_str!("../../../sdk/template/conform.toml");
const TEMPLATE_ID: &str = "vendor/template:1";
const TEMPLATE_CRATE: &str = "handrail-handler-template";

/// Where this build of `handrail` found the Rust SDK.
fn bundled_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust")
}

/// Writes a new handler crate for `id` into `dir` (which must not exist or be empty),
/// depending on the SDK at `sdk` (default: the one this `handrail` was built from).
pub fn new_handler(dir: &Path, id: &str, sdk: Option<&Path>) -> anyhow::Result<()> {
    if !is_valid_handler_id(id) {
        return Err(bad_input(format!(
            "`{id}` is not a handler id of the form vendor/name:major"
        )));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(bad_input(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let sdk = sdk.map(Path::to_owned).unwrap_or_else(bundled_sdk);
    let sdk = std::fs::canonicalize(&sdk).with_context(|| {
        format!(
            "cannot find the handler SDK at {} (give its folder with --sdk)",
            sdk.display()
        )
    })?;
    let files = template_for(id, &sdk);
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A usage error (the caller makes every error of `new-handler` bad input).
fn bad_input(message: String) -> anyhow::Error {
    anyhow::Error::msg(message)
}

/// The crate name of a new handler for `id`.
fn crate_name(id: &str) -> String {
    let (vendor, rest) = id.split_once('/').unwrap_or(("vendor", id));
    let name = rest.rsplit_once(':').map_or(rest, |(name, _)| name);
    format!("{vendor}-{name}")
        .to_ascii_lowercase()
        .replace('.', "-")
}

/// Where cargo puts the component of the crate `new_handler` wrote for `id`, relative
/// to the crate.
pub fn built_artifact(id: &str) -> PathBuf {
    Path::new("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name(id).replace('-', "_")))
}

/// The template's files, renamed for `id`: (path in the crate, contents).
fn template_for(id: &str, sdk: &Path) -> [(&'static str, String); 3] {
    let crate_name = crate_name(id);
    let artifact = format!("{}.wasm", crate_name.replace('-', "_"));
    let sdk_dependency = format!(
        "handrail-sdk = {{ path = {:?} }}",
        sdk.display().to_string()
    );
    let manifest = TEMPLATE_MANIFEST
        .replace(TEMPLATE_CRATE, &crate_name)
        .replace("handrail-sdk = { path = \"../rust\" }", &sdk_dependency)
        // Its own workspace, wherever the vendor puts it.
        + "\n[workspace]\n";
    let lib = TEMPLATE_LIB
        .replace(TEMPLATE_ID, id)
        .replace("handrail_handler_template.wasm", &artifact)
        .replace("vendor-template.toml", &format!("{crate_name}.toml"));
    [
        ("Cargo.toml", manifest),
        ("src/lib.rs", lib),
        ("conform.toml", TEMPLATE_PROFILE.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_renamed_for_the_new_id() {
        let [(_, manifest), (_, lib), (_, profile)] =
            template_for("contoso/camera:2", Path::new("/opt/sdk"));
        assert!(manifest.contains("name = \"contoso-camera\""), "{manifest}");
        assert!(manifest.contains("handrail-sdk = { path = \"/opt/sdk\" }"));
        assert!(manifest.ends_with("[workspace]\n"));
        assert!(lib.contains("const ID: &'static str = \"contoso/camera:2\";"));
        assert!(!lib.contains(TEMPLATE_ID));
        assert!(lib.contains("contoso_camera.wasm"));
        assert!(profile.contains("deviceFolder"));
    }

    #[test]
    fn new_handler_refuses_bad_ids_and_full_folders() {
        let dir = tempfile::tempdir().unwrap();
        let e = new_handler(dir.path(), "camera", None).unwrap_err();
        assert!(e.to_string().contains("vendor/name:major"));
        std::fs::write(dir.path().join("x"), "").unwrap();
        let e = new_handler(dir.path(), "contoso/camera:1", None).unwrap_err();
        assert!(e.to_string().contains("not empty"));
        let fresh = dir.path().join("camera");
        new_handler(&fresh, "contoso/camera:1", None).unwrap();
        assert!(fresh.join("src/lib.rs").is_file() && fresh.join("conform.toml").is_file());
    }
}
