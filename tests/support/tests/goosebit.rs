//! goosebit as the tests drive it: started, given a minimal `.swu`, assigned to devices
//! that speak the DDI API by hand (plain HTTP, no client under test), and recording the
//! outcome they report: success for one, failure for another.

use std::time::Duration;

use handrail_test_support::goosebit::{Goosebit, http, minimal_swu};
use serde_json::{Value, json};

/// A device's poll: the controller resource's links.
fn poll(server: &Goosebit, device: &str) -> Value {
    let answer = http("GET", &server.controller(device), &[], &[]);
    assert_eq!(answer.status, 200, "poll: {answer}\n{}", server.log());
    answer.json()
}

fn send(server: &Goosebit, method: &str, url: &str, body: &Value) -> Value {
    let answer = http(
        method,
        url,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        answer.status,
        200,
        "{method} {url}: {answer}\n{}",
        server.log()
    );
    answer.json()
}

/// Registers `device` as a device does: a first poll, then the configData it asks for.
fn register(server: &Goosebit, device: &str, sw_version: &str) {
    let first = poll(server, device);
    let config = first["_links"]["configData"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("a first poll asks for configData: {first}"))
        .to_owned();
    send(
        server,
        "PUT",
        &config,
        &json!({"mode": "merge", "data": {"sw_version": sw_version}}),
    );
}

/// The deployment offered to `device`: its feedback URL and the artifact's bytes.
fn take_deployment(server: &Goosebit, device: &str) -> (String, Vec<u8>) {
    let links = poll(server, device);
    let base = links["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("an assigned device is offered a deployment: {links}"))
        .to_owned();
    let answer = http("GET", &base, &[], &[]);
    assert_eq!(answer.status, 200, "deploymentBase: {answer}");
    let deployment = answer.json();
    let artifact = &deployment["deployment"]["chunks"][0]["artifacts"][0];
    let href = artifact["_links"]["download"]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("an artifact with a download link: {deployment}"));
    let download = http("GET", href, &[], &[]);
    assert_eq!(download.status, 200, "download: {}", download.status);
    assert_eq!(
        download.body.len() as u64,
        artifact["size"].as_u64().unwrap()
    );
    (format!("{base}/feedback"), download.body)
}

#[test]
fn goosebit_records_what_devices_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = Goosebit::start(&dir.path().join("goosebit"));
    let swu = minimal_swu(dir.path(), "minimal.swu", "1.2.3", &[]);
    let software = server.upload(&swu);

    register(&server, "good", "1.0.0");
    register(&server, "bad", "1.0.0");
    // A registered device polls at the shortest interval and is offered nothing yet.
    let idle = poll(&server, "good");
    assert_eq!(idle["config"]["polling"]["sleep"], "00:00:01", "{idle}");
    assert_eq!(idle["_links"], json!({}), "{idle}");

    server.assign("good", software);
    server.assign("bad", software);

    let (feedback, bytes) = take_deployment(&server, "good");
    assert_eq!(
        bytes,
        std::fs::read(&swu).unwrap(),
        "the artifact is the .swu"
    );
    send(
        &server,
        "POST",
        &feedback,
        &json!({"status": {"execution": "proceeding",
            "result": {"finished": "none", "progress": {"cnt": 1, "of": 2}},
            "details": ["Downloaded 50%"]}}),
    );
    server.wait_device("good", "Running", Duration::from_secs(10), |d| {
        d["last_state"] == "Running"
    });
    send(
        &server,
        "POST",
        &feedback,
        &json!({"status": {"execution": "closed", "result": {"finished": "success"},
            "details": ["installed"]}}),
    );
    let good = server.wait_device("good", "Finished at 1.2.3", Duration::from_secs(10), |d| {
        d["last_state"] == "Finished" && d["sw_version"] == "1.2.3"
    });
    assert_eq!(good["progress"], 100, "{good}");
    assert_eq!(
        server.device_log("good").unwrap(),
        "Downloaded 50%\ninstalled\n"
    );
    // Done: the device runs the assigned version, nothing more is offered.
    assert_eq!(poll(&server, "good")["_links"], json!({}));

    let (feedback, _) = take_deployment(&server, "bad");
    send(
        &server,
        "POST",
        &feedback,
        &json!({"status": {"execution": "closed", "result": {"finished": "failure"},
            "details": ["it broke"]}}),
    );
    let bad = server.wait_device("bad", "Error", Duration::from_secs(10), |d| {
        d["last_state"] == "Error"
    });
    assert_eq!(bad["sw_version"], "1.0.0", "{bad}");
    // Failed: nothing is offered until the update is forced.
    assert_eq!(poll(&server, "bad")["_links"], json!({}));
    server.force_update("bad");
    assert!(poll(&server, "bad")["_links"]["deploymentBase"].is_object());
}
