//! `handrail conform` and `handrail new-handler` through the real binary: the report's
//! three renderings and its exit codes, and the template copied under a new id.

mod common;

use std::fs;

use common::Device;

/// The built-in script handler as a bare artifact, with its profile beside it.
fn script_artifact(dev: &Device) -> std::path::PathBuf {
    let handler = handrail_builtin_handlers::builtin_handlers()
        .into_iter()
        .find(|h| h.id == "microsoft/script:1")
        .unwrap();
    let dir = dev.tmp.path().join("handler");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("script.wasm"), handler.wasm).unwrap();
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../handlers/script/conform.toml"
    );
    fs::copy(profile, dir.join("script.conform.toml")).unwrap();
    dir.join("script.wasm")
}

#[test]
fn conform_reports_for_people_machines_and_ci() {
    let dev = Device::new();
    let artifact = script_artifact(&dev);
    // The script handler runs /bin/sh: a registration that grants it.
    let registration = artifact.with_file_name("script.toml");
    fs::write(
        &registration,
        format!(
            "id = \"microsoft/script:1\"\nkind = \"wasm\"\nartifact = \"script.wasm\"\nsha256 = \"{}\"\n[capabilities]\nrun = [\"/bin/sh\"]\n",
            handrail::registry::sha256_file(&artifact).unwrap()
        ),
    )
    .unwrap();
    let junit = dev.tmp.path().join("junit.xml");
    let run = dev.run(&[
        "--json",
        "conform",
        registration.to_str().unwrap(),
        "--profile",
        artifact
            .with_file_name("script.conform.toml")
            .to_str()
            .unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(report["passed"], true);
    assert_eq!(report["checks"].as_array().unwrap().len(), 12);
    assert_eq!(report["checks"][0]["id"], "HC-001");
    let xml = fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"12\" failures=\"0\""), "{xml}");

    let human = dev.run(&["conform", registration.to_str().unwrap()]);
    assert!(
        human.stdout().contains("pass  HC-004"),
        "{}",
        human.stdout()
    );
}

#[test]
fn a_bare_artifact_without_its_grants_fails_with_exit_1() {
    let dev = Device::new();
    let artifact = script_artifact(&dev);
    // Bare, the artifact is granted nothing: its scripts cannot run, so install fails.
    let run = dev.run(&["--json", "conform", artifact.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1), "{}{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(report["handler"], "microsoft/script:1");
    assert!(
        report["failed"]
            .as_array()
            .unwrap()
            .contains(&"HC-004".into()),
        "{report}"
    );
}

#[test]
fn new_handler_copies_the_template_under_the_new_id() {
    let dev = Device::new();
    let dir = dev.tmp.path().join("camera");
    let run = dev.run(&[
        "new-handler",
        dir.to_str().unwrap(),
        "--id",
        "contoso/camera:1",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("\"contoso/camera:1\""));
    assert!(dir.join("conform.toml").is_file());
    let again = dev.run(&[
        "new-handler",
        dir.to_str().unwrap(),
        "--id",
        "contoso/camera:1",
    ]);
    assert_eq!(again.code(), Some(2), "{}", again.stderr());

    // The hint is the command that works: where cargo puts the component, and the kit
    // finds the crate's conform.toml from there. (The template's own build stands in
    // for the new crate's.)
    let said = format!("{}{}", run.stdout(), run.stderr());
    let built = "target/wasm32-wasip2/release/contoso_camera.wasm";
    assert!(
        said.contains(&format!("handrail conform {built}")),
        "{said}"
    );
    let artifact = dir.join(built);
    fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    fs::copy(handrail_conformance_guests::TEMPLATE, &artifact).unwrap();
    let conform = dev.run(&["conform", artifact.to_str().unwrap()]);
    assert_eq!(
        conform.code(),
        Some(0),
        "{}{}",
        conform.stdout(),
        conform.stderr()
    );
}
