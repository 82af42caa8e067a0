//! Helpers shared by the end-to-end tests: run the real `handrail` binary against a
//! temporary state directory, device folder and payload folder.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared helpers"
)]

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use handrail_test_support::manifest::{Update, inline_step};

/// The base64 sha256 of a file's bytes, as a manifest's `hashes.sha256` gives it.
pub fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// The `handrail` binary under test.
pub fn handrail_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_handrail"))
}

/// A temporary device: state directory, payload folder, device folder.
pub struct Device {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub payloads: PathBuf,
    pub device: PathBuf,
}

/// How a `handrail` run ended.
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn killed(&self) -> bool {
        self.output.status.signal() == Some(SIGKILL)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// The last JSON line of stdout (`--json` output ends with the result).
    pub fn last_json(&self) -> serde_json::Value {
        let out = self.stdout();
        let line = out
            .lines()
            .rev()
            .find(|l| l.starts_with(['{', '[']))
            .unwrap_or_else(|| panic!("no JSON on stdout: {out}\nstderr: {}", self.stderr()));
        serde_json::from_str(line).unwrap()
    }
}

/// The signal a crash-matrix run is killed with.
const SIGKILL: i32 = 9;

impl Device {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let payloads = tmp.path().join("payloads");
        let device = tmp.path().join("device");
        fs::create_dir_all(&payloads).unwrap();
        fs::create_dir_all(&device).unwrap();
        let device = Device {
            tmp,
            state,
            payloads,
            device,
        };
        // The configuration in force unless a test names its own (`--config`).
        fs::create_dir_all(&device.state).unwrap();
        device.write_config(&device.state.join("config.toml"), "");
        device
    }

    /// The grant that lets the script steps' programs write the device folder, as a
    /// device owner grants the folders its scripts install into.
    pub fn script_grant(&self) -> String {
        format!(
            "[handler_grants.\"microsoft/script:1\"]\nwrite = [\"{}\"]\n",
            self.device.display()
        )
    }

    /// Writes the configuration file `path`: `body` and [`Device::script_grant`].
    pub fn write_config(&self, path: &Path, body: &str) {
        fs::write(path, format!("{body}\n{}", self.script_grant())).unwrap();
    }

    /// Copies a fixture file into the payload folder.
    pub fn payload_fixture(&self, name: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/e2e/fixtures")
            .join(name);
        fs::copy(&src, self.payloads.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }

    /// Writes a manifest file and returns its path.
    pub fn manifest(&self, name: &str, value: &serde_json::Value) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        p
    }

    /// Runs `handrail --state-dir <state> --allow-unsigned <args…>` with extra
    /// environment: the test manifests are unsigned.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.command(true, args, env)
    }

    /// Runs `handrail --state-dir <state> <args…>`: signing required unless a
    /// configuration says otherwise.
    pub fn run_strict(&self, args: &[&str]) -> Run {
        self.command(false, args, &[])
    }

    fn command(&self, allow_unsigned: bool, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.command_of(&handrail_bin(), allow_unsigned, args, env)
    }

    /// Runs another build of `handrail` (`bin`) as [`Device::run`] runs the one under
    /// test.
    pub fn run_bin(&self, bin: &Path, args: &[&str]) -> Run {
        self.command_of(bin, true, args, &[])
    }

    fn command_of(
        &self,
        bin: &Path,
        allow_unsigned: bool,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        Run {
            output: self
                .command_for(bin, allow_unsigned, args, env)
                .output()
                .unwrap(),
        }
    }

    fn command_for(
        &self,
        bin: &Path,
        allow_unsigned: bool,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg("--state-dir").arg(&self.state);
        if allow_unsigned {
            cmd.arg("--allow-unsigned");
        }
        cmd.args(args);
        cmd.env_remove("HANDRAIL_CRASH_AFTER_WRITE");
        // One compiled-handler cache for every test device: a cold compile per device
        // would dominate the suite's time.
        cmd.env(
            "HANDRAIL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("handrail-cache"),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `handrail <args…>` as [`Device::run`] does, once `marker` exists returns
    /// it still running (its output piped), for the test to act on it from outside.
    /// Fails when the agent ends first, or the marker does not come within two minutes.
    pub fn start_until(&self, args: &[&str], marker: &Path) -> std::process::Child {
        let mut agent = self
            .command_for(&handrail_bin(), true, args, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !marker.exists() {
            assert!(
                agent.try_wait().unwrap().is_none(),
                "the agent ended before {} appeared",
                marker.display()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "{} never appeared",
                marker.display()
            );
            std::thread::yield_now();
        }
        agent
    }

    /// Starts `handrail <args…>` as [`Device::run`] does and kills it (SIGKILL) once
    /// `marker` exists — a step's script makes it where the test wants the agent to die.
    /// Fails when the agent ends first, or the marker does not come within two minutes.
    pub fn kill_when(&self, args: &[&str], marker: &Path) {
        let mut agent = self.start_until(args, marker);
        agent.kill().unwrap();
        agent.wait().unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `handrail deploy <manifest> --payloads <payload folder>`.
    pub fn deploy(&self, manifest: &Path) -> Run {
        let payloads = self.payloads.to_str().unwrap();
        self.run(&["deploy", manifest.to_str().unwrap(), "--payloads", payloads])
    }

    /// [`Device::deploy`] with `--json`: the events and the report, one JSON line each.
    pub fn deploy_json(&self, manifest: &Path) -> Run {
        let payloads = self.payloads.to_str().unwrap();
        self.run(&[
            "--json",
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            payloads,
        ])
    }

    /// The device log written by `device-step.sh`.
    pub fn log(&self) -> Vec<String> {
        fs::read_to_string(self.device.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A manifest of `microsoft/script:1` steps running `device-step.sh`, one per criteria;
/// `codes[i]` (e.g. `"install=605"`) overrides step i's answers.
pub fn script_manifest(device: &Device, criteria: &[&str], codes: &[&str]) -> serde_json::Value {
    device.payload_fixture("device-step.sh");
    let steps = criteria.iter().enumerate().map(|(i, c)| {
        let mut args = format!("--device {}", device.device.display());
        if let Some(code) = codes.get(i).filter(|c| !c.is_empty()) {
            args.push_str(&format!(" --codes {code}"));
        }
        let mut step = inline_step(
            "microsoft/script:1",
            &["device-step.sh"],
            serde_json::json!({
                "scriptFileName": "device-step.sh",
                "arguments": args,
                "installedCriteria": c,
            }),
        );
        step["description"] = format!("step {i}").into();
        step
    });
    Update::new("contoso", "device-steps", "1.0")
        .compatible_with("contoso", "e2e")
        .steps(steps)
        .json()
        .clone()
}

/// A file system of its own, mounted for the test and unmounted after.
pub struct SmallFileSystem(std::path::PathBuf);

impl SmallFileSystem {
    pub fn mount(at: &std::path::Path, mib: u64) -> SmallFileSystem {
        fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount a {mib} MiB tmpfs at {}",
            at.display()
        );
        SmallFileSystem(at.to_owned())
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Takes the free space of the file system of `dir` down to `leave` bytes with one
/// allocated file in it (kept while the returned file and `path` exist).
pub fn fill_leaving(dir: &Path, leave: u64) -> (fs::File, PathBuf) {
    use std::os::fd::AsRawFd as _;
    let path = dir.join("filler");
    let file = fs::File::create(&path).unwrap();
    // SAFETY: statvfs(3) fills the struct it is given.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let name = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::statvfs(name.as_ptr(), &mut stat) }, 0);
    #[allow(
        clippy::useless_conversion,
        reason = "the fields are 32 bits wide on some 32-bit targets"
    )]
    let free = u64::from(stat.f_bavail) * u64::from(stat.f_frsize);
    let fill = free.saturating_sub(leave) as i64;
    // SAFETY: posix_fallocate(3) on a file this test owns.
    assert_eq!(
        unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, fill) },
        0
    );
    (file, path)
}
