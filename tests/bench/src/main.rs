//! What Handrail costs, measured side by side in one run, as ratios:
//!
//! 1. **load**: cold (a new host over an empty compiled-handler cache, so Cranelift
//!    compiles) and warm (a new host over the cache the cold loads filled) loads of every
//!    built-in WebAssembly handler and of the no-op, up to a described, ready handler;
//! 2. **call**: one no-op `install` through each host's [`LoadedHandler::invoke`] (warm):
//!    WebAssembly component, native library in its worker process, in-process Rust, and
//!    the WebAssembly sandbox set-up alone; against a Mender-style fork/exec of a shell
//!    script per action;
//! 3. **step**: the same through whole deployments (journal, work folder, result file),
//!    plus the built-in script handler running a no-op script;
//! 4. **durability**: a 1,000-step deployment against the fsync floor of this disk — as
//!    many bare fsync'ed appends as the deployment made durable writes (journal and state
//!    records), each fsync'ed on its own — and against making its steps' work folders
//!    and result files bare, which the floor leaves out;
//! 5. **hashing**: sha256 of a 1 GiB payload, Handrail's streaming hash against
//!    `sha256sum` on the same (cached) file;
//! 6. **memory**: peak RSS of `handrail deploy` (the real binary) for 10 and 1,000 steps;
//! 7. **confinement**: starting `/bin/true` bare against starting it as every handler
//!    process starts (capabilities, `no_new_privs`, Landlock, seccomp, a cgroup of its
//!    own), and a no-op native call with its worker started bare against confined;
//! 8. **download**: a 1 GiB payload from nginx on loopback, Handrail's downloader
//!    (streamed, hashed, made durable as it goes, verified) against curl writing it to
//!    a file, and against curl writing it and then fsync'ing it (the same durability), and `handrail deploy` of an envelope whose step's file is downloaded: its
//!    peak RSS and the bytes it wrote per payload byte.
//!
//! Every figure is a median; ratios compare medians. Run it with `scripts/bench.sh`
//! (which builds the `handrail` binary and the native worker beside this one); naming
//! sections runs only those (`scripts/bench.sh call step`).

mod fixtures;
mod measure;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Cold loads per handler (each compiles).
const COLD_LOADS: usize = 5;
/// Warm loads per handler.
const WARM_LOADS: usize = 50;
/// `install` calls per host.
const CALLS: usize = 1000;
/// Native calls (each starts a worker process).
const NATIVE_CALLS: usize = 300;
/// Steps of the per-step deployments.
const ENGINE_STEPS: usize = 100;
/// Deployments per host.
const ENGINE_RUNS: usize = 3;
/// Steps of the durability deployment.
const LONG_STEPS: usize = 1000;
/// Above this, making one file or folder in the scratch folder is slow enough to note.
const SLOW_INODE: Duration = Duration::from_micros(100);
/// Size of the hashed payload.
const HASHED_BYTES: u64 = 1 << 30;
/// Size of the downloaded payload.
const DOWNLOADED_BYTES: u64 = 1 << 30;
/// Downloads of it by curl and by Handrail, each.
const DOWNLOADS: usize = 3;

#[tokio::main]
async fn main() -> Result<()> {
    let sections = Section::chosen(std::env::args().skip(1))?;
    let bin = sibling_programs()?;
    let scratch = tempfile::tempdir_in(
        std::env::var_os("HANDRAIL_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
    )?;
    let dir = scratch.path();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fs = file_system(dir)?;
    println!(
        "Handrail benchmark ({cpus} CPUs, scratch on {} ({fs})): medians; ratios compare \
         figures measured in this run",
        dir.display()
    );
    if fs == "tmpfs" {
        println!(
            "warning: the scratch folder is in memory, where fsync costs nothing; set \
             HANDRAIL_BENCH_DIR to a folder on the device's disk"
        );
    }

    let bench = measure::Bench::new(dir, &bin)?;
    // Measured before the call and step sections, which make and delete thousands of
    // files: on ext4 without a journal those deletions slow every file creation of the
    // next half minute, and the floor makes none.
    let durability = if sections.contains(&Section::Durability) {
        Some(bench.durability().await?)
    } else {
        None
    };

    if sections.contains(&Section::Load) {
        println!();
        println!(
            "{:<40} {:>14} {:>12} {:>10}",
            "1. load, to a described handler", "cold (compile)", "warm (cache)", "warm/cold"
        );
        for (name, loads) in bench.loads().await? {
            println!(
                "{:<40} {:>14} {:>12} {:>10}",
                name,
                show(loads.cold),
                show(loads.warm),
                format!("{:.4}", ratio(loads.warm, loads.cold)),
            );
        }
    }

    // The per-step figures compare with the fork/exec baseline measured here.
    if sections.contains(&Section::Call) || sections.contains(&Section::Step) {
        let calls = bench.calls().await?;
        if sections.contains(&Section::Call) {
            println!();
            println!(
                "{:<40} {:>14} {:>12}",
                "2. one no-op action, warm", "per call", "vs fork/exec"
            );
            for (what, time) in [
                ("fork/exec of a shell script (baseline)", calls.fork_exec),
                ("in-process Rust handler", calls.in_process),
                ("WebAssembly sandbox set-up alone", calls.sandbox),
                ("WebAssembly component", calls.wasm),
                ("native library in its worker process", calls.native),
            ] {
                println!(
                    "{:<40} {:>14} {:>12}",
                    what,
                    show(time),
                    format!("{:.2}x", ratio(time, calls.fork_exec))
                );
            }
            println!(
                "{:<40} {:>14}",
                "WebAssembly / (in-process + sandbox)",
                format!(
                    "{:.2}x",
                    ratio(calls.wasm, calls.in_process + calls.sandbox)
                )
            );
        }
        if sections.contains(&Section::Step) {
            println!();
            println!(
                "{:<40} {:>14} {:>12} {:>12} {:>12}",
                format!("3. through the engine ({ENGINE_STEPS} steps)"),
                "per step",
                "actions",
                "per action",
                "vs fork/exec"
            );
            for row in bench.steps().await? {
                let per_action = row.per_step / u32::try_from(row.actions)?;
                println!(
                    "{:<40} {:>14} {:>12} {:>12} {:>12}",
                    row.what,
                    show(row.per_step),
                    row.actions,
                    show(per_action),
                    format!("{:.2}x", ratio(per_action, calls.fork_exec))
                );
            }
        }
    }

    if let Some(durability) = durability {
        println!();
        println!(
            "{:<40} {:>14} {:>12} {:>12} {:>12}",
            format!("4. {LONG_STEPS}-step deployment"),
            "time",
            "writes",
            "fsyncs",
            "vs floor"
        );
        println!(
            "{:<40} {:>14} {:>12} {:>12} {:>12}",
            "engine, WebAssembly no-op",
            show(durability.deployment),
            durability.writes,
            durability.syncs,
            format!("{:.2}x", ratio(durability.deployment, durability.floor))
        );
        println!(
            "{:<40} {:>14} {:>12} {:>12} {:>12}",
            "fsync floor (each write fsync'ed, bare)",
            show(durability.floor),
            durability.writes,
            durability.writes,
            "1.00x"
        );
        println!(
            "{:<40} {:>14} {:>12} {:>12} {:>12}",
            "a work folder + result file per step",
            show(durability.creations),
            "",
            0,
            format!("{:.2}x", ratio(durability.creations, durability.floor))
        );
        // Two new inodes per step; a disk at rest makes one in some tens of µs.
        let per_inode = durability.creations / u32::try_from(2 * LONG_STEPS)?;
        if per_inode > SLOW_INODE {
            println!(
                "note: a new file or folder takes {} here: many files were deleted on this \
                 file system moments ago (ext4 without a journal skips inodes freed in the \
                 last half minute one by one). Run again after a quiet minute.",
                show(per_inode)
            );
        }
    }

    if sections.contains(&Section::Hashing) {
        let hashing = bench.hashing(HASHED_BYTES)?;
        println!();
        println!(
            "{:<40} {:>14} {:>12} {:>12}",
            "5. sha256 of a 1 GiB payload", "time", "GB/s", "vs sha256sum"
        );
        for (what, time) in [
            ("Handrail (streaming, as admission)", hashing.handrail),
            ("sha256sum", hashing.sha256sum),
        ] {
            println!(
                "{:<40} {:>14} {:>12} {:>12}",
                what,
                show(time),
                format!("{:.2}", HASHED_BYTES as f64 / time.as_secs_f64() / 1e9),
                format!("{:.2}x", ratio(hashing.sha256sum, time))
            );
        }
    }

    if sections.contains(&Section::Memory) {
        println!();
        println!(
            "{:<40} {:>14}",
            "6. peak RSS of `handrail deploy`", "max RSS"
        );
        for (steps, kib) in bench.peak_rss(&[10, LONG_STEPS]).await? {
            println!(
                "{:<40} {:>14}",
                format!("{steps} WebAssembly no-op steps"),
                format!("{:.1} MiB", kib as f64 / 1024.0)
            );
        }
    }
    if sections.contains(&Section::Confinement) {
        let launches = bench.launches().await?;
        println!();
        println!(
            "{:<40} {:>14} {:>12}",
            "7. starting a process", "per start", "vs bare"
        );
        for (what, time, base) in [
            (
                "/bin/true, bare (posix_spawn)",
                launches.bare,
                launches.bare,
            ),
            (
                "the same, forked for a pre-exec hook",
                launches.hooked,
                launches.bare,
            ),
            (
                "confined, in its cgroup (as run)",
                launches.confined,
                launches.bare,
            ),
            (
                "confined, under a reaper (no cgroup)",
                launches.reaped,
                launches.bare,
            ),
            (
                "native call, worker started bare",
                launches.native_bare,
                launches.native_bare,
            ),
            (
                "native call, worker confined",
                launches.native_confined,
                launches.native_bare,
            ),
        ] {
            println!(
                "{:<40} {:>14} {:>12}",
                what,
                show(time),
                format!("{:.2}x", ratio(time, base))
            );
        }
    }
    if sections.contains(&Section::Download) {
        let download = bench.download(DOWNLOADED_BYTES, DOWNLOADS).await?;
        println!();
        println!(
            "{:<40} {:>14} {:>12} {:>12}",
            "8. a 1 GiB download, nginx on loopback", "time", "GB/s", "vs curl"
        );
        for (what, time) in [
            ("curl -o (baseline)", download.curl),
            ("curl -o, then fsync (durable)", download.curl_synced),
            ("Handrail (resumable, hashed, durable)", download.handrail),
        ] {
            println!(
                "{:<40} {:>14} {:>12} {:>12}",
                what,
                show(time),
                format!("{:.2}", DOWNLOADED_BYTES as f64 / time.as_secs_f64() / 1e9),
                format!("{:.2}x", ratio(download.curl, time))
            );
        }
        println!(
            "{:<40} {:>14}",
            "`handrail deploy` of it: peak RSS",
            format!("{:.1} MiB", download.deploy_rss_kib as f64 / 1024.0)
        );
        println!(
            "{:<40} {:>14}",
            "bytes written per payload byte",
            format!(
                "{:.3}",
                download.deploy_written as f64 / DOWNLOADED_BYTES as f64
            )
        );
    }
    Ok(())
}

/// One section of the report; the command line may name some (`scripts/bench.sh call
/// step`), else every one runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Load,
    Call,
    Step,
    Durability,
    Hashing,
    Memory,
    Confinement,
    Download,
}

impl Section {
    const ALL: [(&'static str, Section); 8] = [
        ("load", Section::Load),
        ("call", Section::Call),
        ("step", Section::Step),
        ("durability", Section::Durability),
        ("hashing", Section::Hashing),
        ("memory", Section::Memory),
        ("confinement", Section::Confinement),
        ("download", Section::Download),
    ];

    fn chosen(args: impl Iterator<Item = String>) -> Result<Vec<Section>> {
        let mut chosen = Vec::new();
        for arg in args {
            let Some((_, section)) = Section::ALL.iter().find(|(name, _)| *name == arg) else {
                let names: Vec<&str> = Section::ALL.iter().map(|(name, _)| *name).collect();
                return Err(format!(
                    "unknown section `{arg}`; the sections are {}",
                    names.join(", ")
                )
                .into());
            };
            chosen.push(*section);
        }
        if chosen.is_empty() {
            chosen = Section::ALL.iter().map(|(_, section)| *section).collect();
        }
        Ok(chosen)
    }
}

/// The programs measured beside this one: the `handrail` binary and the native worker.
pub struct Programs {
    /// The `handrail` command-line program.
    pub handrail: PathBuf,
}

fn sibling_programs() -> Result<Programs> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let handrail = dir.join("handrail");
    for program in [&handrail, &dir.join(handrail_native_host::WORKER_PROGRAM)] {
        if !program.is_file() {
            return Err(format!(
                "{} is missing: build it beside the benchmark (scripts/bench.sh does)",
                program.display()
            )
            .into());
        }
    }
    Ok(Programs { handrail })
}

/// The kind of file system `dir` is on, by its statfs magic number.
fn file_system(dir: &Path) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statfs is a valid value of the plain C struct.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs(2) with a NUL-terminated path and a pointer to a live local.
    if unsafe { libc::statfs(path.as_ptr(), &mut info) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 on some targets and u32 or i32 on others"
    )]
    Ok(match info.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        0x2485_1990 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    })
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn show(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}
