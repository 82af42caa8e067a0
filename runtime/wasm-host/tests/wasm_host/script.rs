//! `microsoft/script:1` end to end: the built-in component, run by the host, running a
//! real shell script from the step's payload.

use std::fs;

use handrail::CancelToken;
use handrail::host::InvocationEnd;
use handrail_contract::codes::{self, ext};
use handrail_contract::{Action, Component, ExtendedCode};
use serde_json::json;

use crate::support::{Scratch, invoke, limits, load};

const ID: &str = "microsoft/script:1";

/// Records its command line, working folder and environment in the work folder, then
/// does what its arguments say: `--exit n`, `--rc n` (the result code it reports),
/// `--no-result` (writes no result file).
const SCRIPT: &str = r#"#!/bin/sh
work=; result=; exit_code=0; rc=600; write=yes; prev=
for a in "$@"; do
  case "$prev" in
    --work-folder) work=$a ;;
    --result-file) result=$a ;;
    --exit) exit_code=$a ;;
    --rc) rc=$a ;;
  esac
  case "$a" in --no-result) write=no ;; esac
  prev=$a
done
printf '%s\n' "$0" "$@" > "$work/args.txt"
printf '%s\n' "$(pwd)" > "$work/pwd.txt"
cat "$work/camera-firmware-1.1.json" > "$work/firmware-seen.txt"
env > "$work/env.txt"
if [ "$write" = yes ]; then
  printf '{"resultCode":%s,"extendedResultCode":0,"resultDetails":"from script"}' "$rc" > "$result"
fi
exit "$exit_code"
"#;

fn script_handler() -> &'static [u8] {
    handrail_builtin_handlers::builtin_handlers()
        .into_iter()
        .find(|h| h.id == ID)
        .map(|h| h.wasm)
        .expect("the built-in script handler")
}

fn camera() -> Component {
    let mut c = Component {
        id: "cam-7".into(),
        name: "front-camera".into(),
        group: "cameras".into(),
        manufacturer: "contoso".into(),
        model: "virtual-vc".into(),
        version: Some("1.1".into()),
        ..Component::default()
    };
    c.properties.insert("path".into(), "/dev/video7".into());
    c
}

/// Runs `action` of the script handler with `properties` and the script as payload.
async fn run_script(
    scratch: &Scratch,
    action: Action,
    properties: serde_json::Value,
    component: Option<Component>,
    grants: &[&str],
) -> InvocationEnd {
    run_this_script(scratch, SCRIPT, action, properties, component, grants).await
}

/// [`run_script`] with `script` as `install.sh`.
async fn run_this_script(
    scratch: &Scratch,
    script: &str,
    action: Action,
    properties: serde_json::Value,
    component: Option<Component>,
    grants: &[&str],
) -> InvocationEnd {
    let registration = scratch.registration(ID, script_handler(), grants, limits(64, 30));
    let handler = load(&registration).await;
    let files = vec![
        scratch.payload("install.sh", script),
        scratch.payload("camera-firmware-1.1.json", "{\"version\": \"1.1\"}"),
    ];
    let context = scratch.context(ID, properties, files, component);
    invoke(&handler, action, context, CancelToken::new())
        .await
        .0
}

fn lines(scratch: &Scratch, file: &str) -> Vec<String> {
    fs::read_to_string(scratch.path(&format!("work/{file}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn install_passes_adu_arguments_in_order_and_the_scripts_result_through() {
    let scratch = Scratch::new();
    let end = run_script(
        &scratch,
        Action::Install,
        json!({
            "scriptFileName": "install.sh",
            "arguments": "--pre-install-sim-success --component-name --component-name-val --component-group --component-group-val --component-prop path --component-prop-val path --id --component-id-val --component-manufacturer-val --component-model-val --component-version-val",
            "installedCriteria": "contoso-virtual-camera-1.2-step-0"
        }),
        Some(camera()),
        &["/bin/sh"],
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    let result = scratch.result(Action::Install);
    assert_eq!(result.result_code, codes::INSTALL_SUCCESS, "{result:?}");
    assert_eq!(result.result_details, "from script");

    let work = scratch.work().display().to_string();
    let args = lines(&scratch, "args.txt");
    assert!(
        args[0].ends_with("/install.sh") && !args[0].starts_with("/payload"),
        "the script runs from its host path: {}",
        args[0]
    );
    assert_eq!(
        args[1..],
        [
            "--action-install",
            "--pre-install-sim-success",
            "--component-name",
            "front-camera",
            "--component-group",
            "cameras",
            "--component-prop",
            "path",
            "/dev/video7",
            "--id",
            "cam-7",
            "contoso",
            "virtual-vc",
            "1.1",
            "--work-folder",
            &work,
            "--result-file",
            &format!("{work}/action_install_aduc_result.json"),
            "--installed-criteria",
            "contoso-virtual-camera-1.2-step-0",
        ]
    );
    assert_eq!(lines(&scratch, "pwd.txt"), [work]);
    assert_eq!(
        lines(&scratch, "firmware-seen.txt"),
        [r#"{"version": "1.1"}"#],
        "payload files are in the work folder, as ADU scripts expect"
    );
    let env = lines(&scratch, "env.txt");
    assert!(
        env.iter().any(|l| l.starts_with("PATH=")),
        "scripts get a PATH: {env:?}"
    );
    assert!(
        !env.iter()
            .any(|l| l.starts_with("HOME=") || l.starts_with("CARGO")),
        "nothing of the agent's environment leaks: {env:?}"
    );
}

#[tokio::test]
async fn placeholders_without_a_component_are_not_available_and_api_1_1_passes_the_action_as_a_value()
 {
    let scratch = Scratch::new();
    let end = run_script(
        &scratch,
        Action::IsInstalled,
        json!({
            "scriptFileName": "install.sh",
            "apiVersion": "1.1",
            "arguments": "--rc 900 --component-name-val --component-prop-val path",
        }),
        None,
        &["/bin/sh"],
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(
        scratch.result(Action::IsInstalled).result_code,
        codes::IS_INSTALLED_INSTALLED
    );
    let args = lines(&scratch, "args.txt");
    assert_eq!(
        args[1..7],
        ["--action", "is-installed", "--rc", "900", "n/a", "n/a"]
    );
    assert!(
        !args.contains(&"--installed-criteria".to_owned()),
        "{args:?}"
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_failure_with_the_exit_code() {
    let scratch = Scratch::new();
    run_script(
        &scratch,
        Action::Install,
        json!({"scriptFileName": "install.sh", "arguments": "--exit 3"}),
        None,
        &["/bin/sh"],
    )
    .await;
    let result = scratch.result(Action::Install);
    assert_eq!(result.result_code, codes::FAILURE);
    assert_eq!(result.extended_result_code, 0x3050_1003, "{result:?}");
}

#[tokio::test]
async fn reboot_requests_are_passed_through() {
    let scratch = Scratch::new();
    run_script(
        &scratch,
        Action::Apply,
        json!({"scriptFileName": "install.sh", "arguments": "--rc 706"}),
        None,
        &["/bin/sh"],
    )
    .await;
    assert_eq!(
        scratch.result(Action::Apply).result_code,
        codes::APPLY_REQUIRED_REBOOT
    );
    assert!(lines(&scratch, "args.txt").contains(&"--action-apply".to_owned()));
}

#[tokio::test]
async fn a_script_that_is_not_in_the_payload_fails_naming_it() {
    let scratch = Scratch::new();
    let end = run_script(
        &scratch,
        Action::IsInstalled,
        json!({"scriptFileName": "missing-contoso-camera-installscript.sh"}),
        None,
        &["/bin/sh"],
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    let result = scratch.result(Action::IsInstalled);
    assert_eq!(result.result_code, codes::FAILURE);
    // ADU's DOWNLOAD_FAILURE_GET_PRIMARY_FILE_ENTITY.
    assert_eq!(result.extended(), ExtendedCode::new(3, 5, 0x103));
    assert!(
        result
            .result_details
            .contains("missing-contoso-camera-installscript.sh"),
        "{}",
        result.result_details
    );
    assert!(!scratch.path("work/args.txt").exists(), "nothing ran");
}

#[tokio::test]
async fn a_missing_script_file_name_is_adus_code() {
    let scratch = Scratch::new();
    run_script(&scratch, Action::Install, json!({}), None, &["/bin/sh"]).await;
    let result = scratch.result(Action::Install);
    assert_eq!(result.extended_result_code, 0x3050_0005, "{result:?}");
    assert!(result.result_details.contains("scriptFileName"));
}

#[tokio::test]
async fn a_script_without_a_result_file_fails_with_adus_code() {
    let scratch = Scratch::new();
    run_script(
        &scratch,
        Action::Install,
        json!({"scriptFileName": "install.sh", "arguments": "--no-result"}),
        None,
        &["/bin/sh"],
    )
    .await;
    let result = scratch.result(Action::Install);
    assert_eq!(
        (result.result_code, result.extended_result_code),
        (codes::FAILURE, 0x3050_0205)
    );
}

#[tokio::test]
async fn without_the_shell_granted_nothing_runs() {
    let scratch = Scratch::new();
    run_script(
        &scratch,
        Action::Install,
        json!({"scriptFileName": "install.sh"}),
        None,
        &[],
    )
    .await;
    let result = scratch.result(Action::Install);
    assert_eq!(result.extended(), ext::CAPABILITY_DENIED, "{result:?}");
    assert!(result.result_details.contains("/bin/sh"));
    assert!(!scratch.path("work/args.txt").exists());
}

#[tokio::test]
async fn download_runs_the_script_and_cancel_does_not() {
    let scratch = Scratch::new();
    let properties = json!({"scriptFileName": "install.sh", "arguments": "--rc 500"});
    run_script(
        &scratch,
        Action::Download,
        properties.clone(),
        None,
        &["/bin/sh"],
    )
    .await;
    assert_eq!(
        scratch.result(Action::Download).result_code,
        codes::DOWNLOAD_SUCCESS
    );
    assert_eq!(lines(&scratch, "args.txt")[1], "--action-download");

    let scratch = Scratch::new();
    run_script(&scratch, Action::Cancel, properties, None, &["/bin/sh"]).await;
    assert_eq!(
        scratch.result(Action::Cancel).result_code,
        codes::CANCEL_SUCCESS
    );
    assert!(!scratch.path("work/args.txt").exists());
}

/// A script as ADU's demos write them: `#!/bin/bash` and what only bash understands
/// (`[[ ]]`, an associative array, `${BASH_SOURCE[0]}`, `$(( ))` in hex).
const BASH_SCRIPT: &str = r#"#!/bin/bash
declare -A component_props
result_file=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --result-file) result_file="$2"; shift; shift ;;
        --component-prop) component_props["$2"]="$3"; shift; shift; shift ;;
        *) shift ;;
    esac
done
script_name=$(basename "${BASH_SOURCE[0]}")
code=$((0x30500000 + 0))
if [[ -n "$result_file" && "$script_name" == "install.sh" ]]; then
    result='{"resultCode":600, "extendedResultCode":'"$code"',"resultDetails":"'"${component_props[path]}"'"}'
    echo "$result" > "$result_file"
fi
"#;

#[tokio::test]
async fn a_bash_script_runs_under_bash_once_bash_is_granted() {
    let properties = json!({
        "scriptFileName": "install.sh",
        "arguments": "--component-prop path --component-prop-val path",
    });
    let scratch = Scratch::new();
    let end = run_this_script(
        &scratch,
        BASH_SCRIPT,
        Action::Install,
        properties.clone(),
        Some(camera()),
        &["/bin/sh", "/bin/bash"],
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    let result = scratch.result(Action::Install);
    assert_eq!(result.result_code, codes::INSTALL_SUCCESS, "{result:?}");
    assert_eq!(result.result_details, "/dev/video7");

    // The interpreter the `#!` line names must be granted: the failure says which and
    // how.
    let scratch = Scratch::new();
    run_this_script(
        &scratch,
        BASH_SCRIPT,
        Action::Install,
        properties,
        Some(camera()),
        &["/bin/sh"],
    )
    .await;
    let result = scratch.result(Action::Install);
    assert_eq!(result.extended(), ext::CAPABILITY_DENIED, "{result:?}");
    for said in [
        "`#!/bin/bash`",
        "/bin/bash",
        "capabilities.run",
        "handler_grants",
    ] {
        assert!(
            result.result_details.contains(said),
            "{said}: {}",
            result.result_details
        );
    }
}
