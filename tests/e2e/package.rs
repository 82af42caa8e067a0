//! The Debian package `scripts/package.sh` builds, from the binaries under test: what it
//! holds, a real `dpkg -i`, the installed binary, man pages, completions and sample
//! configuration in use, its systemd unit checked by `systemd-analyze verify`, and
//! `dpkg --purge` taking all of it away again.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::handrail_bin;
use handrail_test_support::MachineLock;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Purges the package when created and when dropped, so that no run leaves it behind.
struct Purged;

impl Purged {
    fn new() -> Purged {
        Self::purge();
        Purged
    }

    fn purge() {
        let _ = Command::new("dpkg").args(["--purge", "handrail"]).output();
    }
}

impl Drop for Purged {
    fn drop(&mut self) {
        Self::purge();
    }
}

#[test]
fn the_package_installs_runs_its_unit_verifies_and_purges_without_a_trace() {
    let _dpkg = MachineLock::apt();
    let from = handrail_bin().parent().unwrap().to_owned();
    assert!(
        from.join("handrail-native-worker").exists(),
        "{}: no handrail-native-worker (the workspace build makes it)",
        from.display()
    );
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/package.sh");
    let built = run(Command::new("bash")
        .arg(&script)
        .arg("--from")
        .arg(&from)
        .arg("--out")
        .arg(out.path())
        // The binaries under test are debug builds, hundreds of MiB: not worth xz here.
        .args(["--compression", "none"]));
    let deb = String::from_utf8(built.stdout).unwrap().trim().to_owned();
    assert!(deb.ends_with(".deb") && Path::new(&deb).exists(), "{deb}");

    let contents =
        String::from_utf8(run(Command::new("dpkg-deb").args(["--contents", &deb])).stdout).unwrap();
    for path in [
        "./usr/bin/handrail",
        "./usr/bin/handrail-native-worker",
        "./lib/systemd/system/handrail-ddi.service",
        "./etc/handrail/config.toml",
        "./usr/share/man/man1/handrail.1.gz",
        "./usr/share/man/man1/handrail-ddi.1.gz",
        "./usr/share/man/man1/handrail-deploy.1.gz",
        "./usr/share/bash-completion/completions/handrail",
        "./usr/share/zsh/vendor-completions/_handrail",
        "./usr/share/fish/vendor_completions.d/handrail.fish",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{contents}"
        );
    }
    assert!(
        contents.lines().all(|l| l.contains("root/root")),
        "every file is root's:\n{contents}"
    );
    let version =
        String::from_utf8(run(Command::new("dpkg-deb").args(["--field", &deb, "Version"])).stdout)
            .unwrap();
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));

    // Installed for real.
    let _purged = Purged::new();
    run(Command::new("dpkg").args(["-i", &deb]));
    let shown = run(Command::new("/usr/bin/handrail").arg("--version"));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{shown:?}"
    );
    // The sample configuration is one the binary takes.
    let state = tempfile::tempdir().unwrap();
    run(Command::new("/usr/bin/handrail")
        .arg("--state-dir")
        .arg(state.path())
        .args(["--config", "/etc/handrail/config.toml", "handlers", "list"]));
    // The unit, with its binary and its man page in place.
    run(Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/handrail-ddi.service"]));
    let page = run(Command::new("man").args(["-P", "cat", "handrail-ddi"]));
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains("--once"), "{page}");
    let completion =
        std::fs::read_to_string("/usr/share/bash-completion/completions/handrail").unwrap();
    assert!(
        completion.contains("ddi") && completion.contains("bundle"),
        "{completion}"
    );

    // Purged: nothing of it is left.
    run(Command::new("dpkg").args(["--purge", "handrail"]));
    for path in [
        "/usr/bin/handrail",
        "/usr/bin/handrail-native-worker",
        "/lib/systemd/system/handrail-ddi.service",
        "/etc/handrail/config.toml",
        "/usr/share/man/man1/handrail.1.gz",
    ] {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
}
