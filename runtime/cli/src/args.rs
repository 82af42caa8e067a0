//! The `handrail` command line: its options and subcommands, in one place for the
//! binary and for the man pages and shell completions `handrail-docs` generates.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use handrail::config::FailurePolicy;

/// Runs over-the-air update steps through sandboxed handlers.
#[derive(Parser)]
#[command(name = "handrail", version, about, long_about = None)]
pub struct Cli {
    /// State directory (journal, history, handler registrations, cache).
    #[arg(long, global = true, env = "HANDRAIL_STATE_DIR", default_value_os_t = default_state_dir())]
    pub state_dir: PathBuf,

    /// Machine-readable output: JSON lines of events, then the JSON result.
    #[arg(long, global = true)]
    pub json: bool,

    /// Configuration file (TOML: device identity, policies, hooks); default
    /// `<state-dir>/config.toml` when present.
    #[arg(long, global = true, env = "HANDRAIL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Accept unsigned update manifests (for tests and demos). Without it, signing is
    /// required unless the configuration says `[signing] required = false`; with no
    /// configuration file there are no root keys, so every manifest is refused.
    #[arg(long, global = true)]
    pub allow_unsigned: bool,

    /// Compiled-handler cache (default: `<state-dir>/cache`); may be shared by several
    /// state directories.
    #[arg(long, global = true, env = "HANDRAIL_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Device components for component-aware child updates, as
    /// `{"components": [...]}` (default: `<state-dir>/components.json` when present).
    #[arg(long, global = true, env = "HANDRAIL_COMPONENTS")]
    pub components: Option<PathBuf>,

    /// A component-enumerator plugin (`wit/enumerator.wit`) to list the device's
    /// components instead of a components file: its registration (`.toml`, kind `wasm`;
    /// `capabilities.read` grants the folders it reads, `[config]` is passed to it), or
    /// a bare `.wasm` component, which is granted nothing.
    #[arg(
        long,
        global = true,
        env = "HANDRAIL_ENUMERATOR",
        conflicts_with = "components"
    )]
    pub enumerator: Option<PathBuf>,

    /// More log output (-v info, -vv debug, -vvv trace); `HANDRAIL_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Admit an update manifest and run its steps.
    Deploy {
        /// The update manifest (or the delivered envelope).
        manifest: PathBuf,
        /// Folder holding the update's payload files (and child manifests).
        #[arg(long)]
        payloads: PathBuf,
        /// Deployment id (default: the envelope's workflow id, else a fresh one).
        #[arg(long)]
        id: Option<String>,
        /// Refuse payload files the manifest gives no size and sha256 for.
        #[arg(long)]
        require_hashes: bool,
        /// What a failed step does to earlier ones: rollback or stop (default: config).
        #[arg(long)]
        failure_policy: Option<FailurePolicy>,
    },
    /// Continue the deployment left suspended (reboot, restart) or interrupted (crash).
    Resume,
    /// End the deployment left suspended (or interrupted) without carrying it on: the
    /// stopped step and every earlier one are rolled back as the failure policy says,
    /// and history records it cancelled (exit 5).
    Abandon,
    /// Cancel the deployment another `handrail deploy` or `resume` is running on this
    /// state directory, as Ctrl-C there would (its action stopped, its steps rolled back
    /// as the failure policy says), and wait for it to end.
    Cancel {
        /// How long to wait for the deployment to end, in seconds.
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        wait: u64,
    },
    /// Parse and validate a manifest without running anything.
    Validate {
        /// The update manifest (or the delivered envelope).
        manifest: PathBuf,
        /// Folder holding a detached manifest's payload file (default: the manifest's
        /// folder).
        #[arg(long)]
        payloads: Option<PathBuf>,
    },
    /// Show the deployment in progress and the installed-criteria records.
    Status,
    /// Show finished deployments, newest last.
    History {
        /// Show only the last N entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check that this binary can serve the state directory (used after a self-update;
    /// reads only, so it works while another process holds the lock).
    Health,
    /// Manage handler registrations.
    Handlers {
        #[command(subcommand)]
        command: HandlersCommand,
    },
    /// Write an update manifest: start one, add payload files (sizes and hashes
    /// computed), add steps.
    Manifest {
        #[command(subcommand)]
        command: ManifestCommand,
    },
    /// Run the conformance kit's contract checks against a handler in its sandbox.
    /// Exit 0 when every check passes or is skipped, 1 when one fails.
    Conform {
        /// The handler: a component (`.wasm`), a native library (`.so`) or a
        /// registration (`.toml`); a profile beside it (`<name>.conform.toml` or
        /// `conform.toml`) supplies the step to run it with.
        handler: PathBuf,
        /// The conformance profile (default: the one beside the handler, if any).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Also write the report as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Compile handlers ahead of time for the lean build (no compiler): one component, or
    /// the built-in handlers with their registrations; for this machine, or for a device
    /// of another architecture (`--target`). Only in a full build.
    Precompile {
        /// The component to precompile (`.wasm`).
        #[arg(required_unless_present = "builtins", conflicts_with = "builtins")]
        artifact: Option<PathBuf>,
        /// Where to write it (default: the artifact's path with `.cwasm`).
        #[arg(short, long, requires = "artifact")]
        output: Option<PathBuf>,
        /// Precompile the built-in handlers into this folder, each with a registration
        /// naming it, to copy into the device's `<state-dir>/handlers/`.
        #[arg(long, value_name = "DIR")]
        builtins: Option<PathBuf>,
        /// Precompile for a device of this Rust target triple (e.g.
        /// `aarch64-unknown-linux-gnu`, `armv7-unknown-linux-gnueabihf`) at its
        /// architecture's baseline CPU, rather than for this machine's CPU.
        #[arg(long, value_name = "TRIPLE")]
        target: Option<String>,
        /// With `--target`: CPU features the devices all have, beyond the baseline
        /// (Cranelift's names, e.g. `lse,fp16` for aarch64), comma-separated.
        #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "target")]
        cpu_features: Vec<String>,
    },
    /// Take updates from the hawkBit DDI server `[ddi]` in the configuration names:
    /// poll it, run what it assigns, report each result once (a long-running service;
    /// SIGINT or SIGTERM cancels a running deployment, reports it and stops). Exits 3
    /// (reboot) or 4 (restart) when a step asks for one; started again, it resumes the
    /// deployment and reports its result.
    Ddi {
        /// Poll once, run what that poll offers to its end, report it, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Pack an update manifest (signed, as delivered) and its payload folder into one
    /// Handrail bundle: an SWUpdate-compatible `.swu` (cpio, `sw-description` first) for
    /// servers that take one file per update.
    Bundle {
        /// The update manifest or envelope.
        manifest: PathBuf,
        /// The folder of its payload files: every regular file in it goes in.
        #[arg(long)]
        payloads: PathBuf,
        /// Where to write the bundle (`.swu`).
        #[arg(short, long)]
        output: PathBuf,
        /// `software.version` of its `sw-description` (default: the update's version).
        #[arg(long)]
        version: Option<String>,
        /// `hardware-compatibility` entries of its `sw-description` (board revisions).
        #[arg(long, value_delimiter = ',')]
        hardware: Vec<String>,
    },
    /// Create a handler crate from the vendor template.
    NewHandler {
        /// The folder to create (must not exist, or be empty).
        dir: PathBuf,
        /// The handler id, `vendor/name:major`.
        #[arg(long)]
        id: String,
        /// The handler SDK's folder (default: the one this `handrail` was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum HandlersCommand {
    /// List registered handlers.
    List,
    /// Register a handler: write `<state-dir>/handlers/<vendor>-<name>-<major>.toml`
    /// with the artifact's sha256 computed, what it is granted and its limits (0644).
    Add(Box<HandlerAdd>),
}

/// What `handrail handlers add` writes.
#[derive(clap::Args)]
pub struct HandlerAdd {
    /// The handler's artifact: a component (`.wasm`, `.cwasm`) or a native library
    /// (`.so`).
    pub artifact: PathBuf,
    /// Its id, `vendor/name:major`.
    #[arg(long)]
    pub id: String,
    /// wasm or native (default: by the artifact's name).
    #[arg(long, value_parser = ["wasm", "native"])]
    pub kind: Option<String>,
    /// A program it may run (absolute path); repeatable.
    #[arg(long = "run", value_name = "PROGRAM")]
    pub run: Vec<PathBuf>,
    /// A host folder it may read; repeatable.
    #[arg(long = "read", value_name = "FOLDER")]
    pub read: Vec<PathBuf>,
    /// A host folder it may read and write; repeatable.
    #[arg(long = "write", value_name = "FOLDER")]
    pub write: Vec<PathBuf>,
    /// Sockets its processes may open: ip, unix, netlink; repeatable.
    #[arg(long = "socket", value_name = "FAMILY")]
    pub sockets: Vec<String>,
    /// A Linux capability its processes keep (e.g. CAP_CHOWN); repeatable.
    #[arg(long = "privilege", value_name = "CAP")]
    pub privileges: Vec<String>,
    /// Memory limit of one action, MiB.
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Time limit of one action, seconds.
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Write it even if the id is registered already.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Start an update manifest (v5) with no steps.
    New {
        /// The file to write.
        out: PathBuf,
        /// The update's id, `provider/name/version`.
        #[arg(long)]
        update: String,
        /// A compatibility entry, `key=value,key=value` (e.g.
        /// `manufacturer=contoso,model=toaster`); repeatable.
        #[arg(long, required = true)]
        compatibility: Vec<String>,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Add payload files to a manifest's `files`, their sizes and sha256s computed (a
    /// file already there by name is brought up to date).
    AddFile {
        /// The manifest.
        manifest: PathBuf,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The file id (with one file; default `f1`, `f2`, …).
        #[arg(long)]
        id: Option<String>,
    },
    /// Add an inline step after the manifest's steps.
    AddStep {
        /// The manifest.
        manifest: PathBuf,
        /// The handler id, `vendor/name:major`.
        #[arg(long)]
        handler: String,
        /// A payload file of the step (by name, in the manifest's files); repeatable.
        #[arg(long = "file", value_name = "NAME")]
        files: Vec<String>,
        /// A handler property, `key=value` (the value as JSON when it is JSON);
        /// repeatable.
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
        /// `installedCriteria`.
        #[arg(long)]
        installed_criteria: Option<String>,
        /// The step's description.
        #[arg(long)]
        description: Option<String>,
    },
}

/// `/var/lib/handrail` for root; `$XDG_STATE_HOME/handrail` or
/// `~/.local/state/handrail` otherwise.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/handrail");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("handrail");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/handrail"),
        None => PathBuf::from("/var/lib/handrail"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
