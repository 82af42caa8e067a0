//! The launcher on real processes: what a confined program gets, how a start that fails
//! is named, and the reaper that stands in for a cgroup ending everything a program
//! leaves, however it left it.

use std::path::{Path, PathBuf};

use handrail::confinement::LandlockPolicy;
use handrail_confine::{CgroupLimits, Child, Confinement, Grants, Launch, left_behind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const LIMITS: CgroupLimits = CgroupLimits {
    max_processes: 64,
    memory_bytes: 256 * 1024 * 1024,
};

fn confinement(work: &Path) -> Confinement {
    Confinement::prepare(
        &Grants {
            payload: &[],
            work: Some(work),
            read: &[],
            write: &[],
            run: &[],
            sockets: &[],
            privileges: &[],
        },
        LandlockPolicy::Require,
    )
    .expect("Landlock is required here")
}

fn shell(script: &str) -> Launch {
    Launch::new("/bin/sh").args(["-c", script])
}

/// Whether a process with this pid exists (a zombie counts).
fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn read_all(child: &mut Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (a, b) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    a.unwrap();
    b.unwrap();
    (out, err)
}

#[tokio::test]
async fn a_confined_program_gets_its_arguments_environment_folder_and_streams_and_nothing_else() {
    let work = tempfile::tempdir().unwrap();
    let conf = confinement(work.path());
    let script = r#"echo "arg=$1 greeting=$GREETING home=${HOME-unset}"; pwd; echo oops >&2
        read line; echo "read=$line"
        read -r stat < /proc/$$/stat; set -- $stat; [ "$5" = "$$" ] && echo own-group
        exit 3"#;
    let mut child = shell(script)
        .args(["sh", "first"])
        .envs([("GREETING", "hello")])
        .current_dir(work.path())
        .stdin_piped()
        .spawn(&conf, LIMITS, "the test program")
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"from the runtime\n").await.unwrap();
    drop(stdin);
    let (out, err) = read_all(&mut child).await;
    let status = child.wait().await.unwrap();
    child.end("launch-test/streams", true).await;
    assert_eq!(status.code(), Some(3), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "arg=first greeting=hello home=unset", "{out}");
    assert_eq!(
        PathBuf::from(lines[1]).canonicalize().unwrap(),
        work.path().canonicalize().unwrap()
    );
    assert_eq!(lines[2], "read=from the runtime");
    assert_eq!(lines.get(3), Some(&"own-group"), "{out}");
    assert_eq!(err.trim(), "oops");
}

#[tokio::test]
async fn a_start_that_fails_names_the_program_and_the_step_that_failed() {
    let work = tempfile::tempdir().unwrap();
    let conf = confinement(work.path());
    let missing = Launch::new("/nonexistent/program")
        .spawn(&conf, LIMITS, "a missing program")
        .err()
        .expect("a missing program does not start");
    let text = missing.to_string();
    assert!(
        text.starts_with("/nonexistent/program: executing it: No such file or directory"),
        "{text}"
    );
    let folder = Launch::new("/bin/true")
        .current_dir(work.path().join("gone"))
        .spawn(&conf, LIMITS, "a program in a missing folder")
        .err()
        .expect("a missing folder is an error");
    assert!(
        folder
            .to_string()
            .starts_with("/bin/true: entering its working folder:"),
        "{folder}"
    );
    let bare = Launch::new("no-such-program-anywhere")
        .spawn(&conf, LIMITS, "a name")
        .err()
        .unwrap();
    assert_eq!(
        bare.to_string(),
        "no-such-program-anywhere: not found in PATH"
    );
    // Under a reaper, the same names.
    let reaped = Launch::new("/nonexistent/program")
        .spawn_in(&conf, None)
        .err()
        .expect("a missing program does not start under a reaper");
    assert!(
        reaped
            .to_string()
            .starts_with("/nonexistent/program: executing it:"),
        "{reaped}"
    );
}

/// Starts `script` under a reaper (no cgroup) and reads the pids it prints, one per
/// line, up to the line `ready`.
async fn under_a_reaper(work: &Path, script: &str) -> (Child, Vec<i32>) {
    let conf = confinement(work);
    let mut child = shell(script)
        .current_dir(work)
        .spawn_in(&conf, None)
        .unwrap();
    assert!(!child.in_cgroup());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line == "ready" {
            break;
        }
        pids.push(line.trim().parse().unwrap());
    }
    (child, pids)
}

#[tokio::test]
async fn under_a_reaper_what_a_program_leaves_in_a_new_session_is_killed_and_counted() {
    let work = tempfile::tempdir().unwrap();
    // A daemon in a session of its own, and a double-forked one: neither is the
    // program's child by the time it exits, nor in its process group.
    let script = r#"( setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! )
        ( ( sleep 1001 </dev/null >/dev/null 2>&1 & echo $! ) & wait )
        echo ready; exit 7"#;
    let (mut child, pids) = under_a_reaper(work.path(), script).await;
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| exists(p)), "the daemons run: {pids:?}");
    let status = child.wait().await.unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "the reaper exits as the program did"
    );
    child.end("launch-test/reaper-left", true).await;
    for pid in &pids {
        assert!(!exists(*pid), "{pid} outlived the program");
    }
    assert_eq!(left_behind("launch-test/reaper-left"), 2);
}

#[tokio::test]
async fn under_a_reaper_a_program_killed_by_a_signal_reports_the_signal() {
    use std::os::unix::process::ExitStatusExt;
    let work = tempfile::tempdir().unwrap();
    let (mut child, _) = under_a_reaper(work.path(), "echo ready; kill -TERM $$").await;
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    child.end("launch-test/reaper-signal", true).await;
    assert_eq!(left_behind("launch-test/reaper-signal"), 0);
}

#[tokio::test]
async fn under_a_reaper_a_stop_ends_the_program_and_all_it_started_at_once() {
    let work = tempfile::tempdir().unwrap();
    let script = r#"( setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! )
        sleep 1002 </dev/null >/dev/null 2>&1 & echo $!
        echo $$; echo ready; wait"#;
    let (mut child, pids) = under_a_reaper(work.path(), script).await;
    assert_eq!(pids.len(), 3);
    // A time limit or a cancel: the program has not exited.
    child.end("launch-test/reaper-stop", false).await;
    for pid in &pids {
        assert!(!exists(*pid), "{pid} outlived the stop");
    }
    assert_eq!(
        left_behind("launch-test/reaper-stop"),
        0,
        "what a stop ended is not the handler's doing"
    );
}

#[tokio::test]
async fn a_dropped_child_under_a_reaper_takes_everything_with_it() {
    let work = tempfile::tempdir().unwrap();
    let script = r#"( setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! )
        echo $$; echo ready; sleep 1003"#;
    let (child, pids) = under_a_reaper(work.path(), script).await;
    let reaper = i32::try_from(child.id()).unwrap();
    drop(child);
    // The reaper ends them, then itself: wait for it to be gone, within a bound far
    // past what that takes.
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while exists(reaper) {
        assert!(
            std::time::Instant::now() < bound,
            "the reaper of a dropped child still runs after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for pid in &pids {
        assert!(!exists(*pid), "{pid} outlived the dropped child");
    }
}
