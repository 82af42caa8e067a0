use super::*;

fn spec_files(dir: &Path, files: &[(&str, &[u8])]) -> Vec<(String, PathBuf)> {
    files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.join(format!("src-{name}"));
            std::fs::write(&path, bytes).unwrap();
            (name.to_string(), path)
        })
        .collect()
}

fn write(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let out = dir.join("update.swu");
    let files = spec_files(dir, files);
    Bundle::write(
        &out,
        &BundleSpec {
            version: "1.2.3",
            description: "test",
            hardware_compatibility: &["1.0".into()],
            manifest: br#"{"updateManifest":"{}"}"#,
            files: &files,
        },
    )
    .unwrap();
    out
}

/// Archives the files `names` lists (one per line) in `dir` with the system's cpio, in
/// `format`, to `out`.
fn cpio_out(format: &str, dir: &Path, names: &[u8], out: &Path) {
    let mut child = std::process::Command::new("cpio")
        .args(["-o", "-H", format, "--quiet"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(File::create(out).unwrap())
        .spawn()
        .expect("cpio runs (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(names).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn round_trip_keeps_every_member_and_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
    let out = write(
        dir.path(),
        &[("b.bin", &big), ("a.sh", b"#!/bin/bash\necho hi\n")],
    );
    let bundle = Bundle::open(&out).unwrap();
    let names: Vec<&str> = bundle.members().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, [SW_DESCRIPTION, MANIFEST_MEMBER, "a.sh", "b.bin"]);
    assert!(bundle.is_handrail_bundle());
    let desc = String::from_utf8(bundle.read(&bundle.members()[0], 4096).unwrap()).unwrap();
    assert!(desc.contains("version = \"1.2.3\";"), "{desc}");
    assert!(
        desc.contains("hardware-compatibility: [ \"1.0\" ];"),
        "{desc}"
    );
    let manifest = bundle.member(MANIFEST_MEMBER).unwrap();
    assert_eq!(
        bundle.read(manifest, 1024).unwrap(),
        br#"{"updateManifest":"{}"}"#
    );
    let extracted = dir.path().join("out");
    let written = bundle.extract_payloads(&extracted).unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(std::fs::read(extracted.join("b.bin")).unwrap(), big);
    assert!(!extracted.join(MANIFEST_MEMBER).exists());
}

/// The archive is one the system's own cpio reads, member for member, with checksums.
#[test]
fn cpio_reads_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = write(dir.path(), &[("payload.txt", b"hello\n")]);
    let listing = std::process::Command::new("cpio")
        .args(["-i", "-t", "--quiet"])
        .stdin(File::open(&out).unwrap())
        .output()
        .expect("cpio runs (scripts/setup.sh installs it)");
    assert!(listing.status.success(), "{listing:?}");
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        format!("{SW_DESCRIPTION}\n{MANIFEST_MEMBER}\npayload.txt\n")
    );
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = std::process::Command::new("cpio")
        .args(["-i", "--quiet", "--only-verify-crc"])
        .current_dir(&unpacked)
        .stdin(File::open(&out).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}

/// An image the system's cpio made (no manifest member) reads as a plain SWUpdate image.
#[test]
fn a_plain_swupdate_image_is_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(SW_DESCRIPTION),
        "software = { version = \"1\"; };\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rootfs.ext4"), vec![7u8; 5000]).unwrap();
    let out = dir.path().join("image.swu");
    cpio_out("crc", dir.path(), b"sw-description\nrootfs.ext4\n", &out);
    let bundle = Bundle::open(&out).unwrap();
    assert!(!bundle.is_handrail_bundle());
    assert_eq!(bundle.members()[1].size, 5000);
}

#[test]
fn damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = write(dir.path(), &[("payload.txt", b"hello, world\n")]);
    let good = std::fs::read(&out).unwrap();
    // A flipped byte inside the payload's data.
    let at = good
        .windows(5)
        .position(|w| w == b"hello")
        .expect("payload bytes in the archive");
    let mut bad = good.clone();
    bad[at] ^= 1;
    std::fs::write(&out, &bad).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("member `payload.txt` is damaged"), "{e}");
    // Cut short.
    std::fs::write(&out, &good[..good.len() / 2]).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("not a valid bundle"), "{e}");
    // Not cpio at all.
    std::fs::write(&out, [&b"PK\x03\x04"[..], &[0u8; 300]].concat()).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("no cpio newc header at byte 0"), "{e}");
}

#[test]
fn names_that_leave_the_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../evil", "a/b", "..", ""] {
        let files = vec![(bad.to_owned(), dir.path().join("x"))];
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        let e = Bundle::write(
            &dir.path().join("o.swu"),
            &BundleSpec {
                version: "1",
                description: "d",
                hardware_compatibility: &[],
                manifest: b"{}",
                files: &files,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a plain file name"), "{bad}: {e}");
    }
    // An archive made elsewhere with a member that climbs out.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(
        src.join(SW_DESCRIPTION),
        "software = { version = \"1\"; };\n",
    )
    .unwrap();
    std::fs::write(src.join("sub/f"), b"f").unwrap();
    let out = dir.path().join("climb.swu");
    cpio_out("newc", &src, b"sw-description\nsub/f\n", &out);
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("member `sub/f`: not a plain file name"), "{e}");
}
