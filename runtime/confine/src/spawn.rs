//! Starting a confined process, and ending it with everything it started.
//!
//! [`Launch::spawn`] starts the process the way `posix_spawn` does: a child that shares
//! the runtime's memory (`CLONE_VM | CLONE_VFORK`) and makes system calls only — the
//! standard streams, its own process group, the working folder, its cgroup, then the
//! [`Confinement`] — before it executes the program. The runtime is not copied, so a
//! confined start costs little more than a bare one however large the runtime is (a
//! `fork` copies the page tables of every mapping, wasmtime's among them). The child
//! comes from a launcher thread, one per set of socket grants and kept capabilities,
//! that installed the seccomp filters on itself and lowered its capability bounding set
//! once; the child inherits both at no cost, where installing the filters per child made
//! the kernel check and cache them every time (and the bounding set took a system call
//! per capability).
//!
//! **Where no cgroup can be made** (no cgroup file system, not root), a *reaper* stands
//! between the runtime and the program: a copy of the runtime that marks itself the
//! child subreaper (`PR_SET_CHILD_SUBREAPER`), starts the program and waits. Whatever the
//! program starts and leaves — in the background, in a new session, double-forked — is
//! handed to the reaper when its parent dies. When the program exits, what is still
//! there gets [`LEFT_BEHIND_GRACE`](crate::LEFT_BEHIND_GRACE) to end by itself; the
//! reaper then kills it all, counts it, and exits as the program did. On a time limit
//! or a cancel the runtime asks the reaper (`SIGTERM`) to end everything at once. The
//! log says so when a reaper stands in for a cgroup; what a reaper cannot do is limit
//! processes or memory, or catch what a runtime killed outright left behind.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use seccompiler::BpfProgram;

use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use crate::Confinement;
use crate::cgroup::{ActionCgroup, CgroupLimits, JoinFds};

/// The stack the child runs on until it executes the program.
const CHILD_STACK: usize = 256 * 1024;

/// How a child that could not execute the program exits.
const CANNOT_EXECUTE: libc::c_int = 127;

/// The steps of a start, named in the error when one fails (the child writes the
/// number).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Step {
    Stdio,
    Group,
    Cwd,
    Cgroup,
    Confine,
    Exec,
    Reaper,
}

impl Step {
    const ALL: [Step; 7] = [
        Step::Stdio,
        Step::Group,
        Step::Cwd,
        Step::Cgroup,
        Step::Confine,
        Step::Exec,
        Step::Reaper,
    ];

    /// The step the child wrote as `number`.
    fn from_number(number: u8) -> Option<Step> {
        Step::ALL.get(usize::from(number)).copied()
    }

    fn doing(self) -> &'static str {
        match self {
            Step::Stdio => "setting up its standard streams",
            Step::Group => "making its process group",
            Step::Cwd => "entering its working folder",
            Step::Cgroup => "joining its cgroup",
            Step::Confine => "confining it",
            Step::Exec => "executing it",
            Step::Reaper => "starting its reaper",
        }
    }
}

/// A process to start confined: program, arguments, environment (nothing of the
/// runtime's), working folder, standard input.
#[derive(Debug, Clone)]
pub struct Launch {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin_piped: bool,
}

impl Launch {
    /// A launch of `program` (a path; a bare name is looked up in the launch's `PATH`,
    /// or the runtime's) with no arguments, an empty environment and `/dev/null` as
    /// standard input. Standard output and error are always pipes to the runtime.
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin_piped: false,
        }
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds environment variables.
    #[must_use]
    pub fn envs<I, K, V>(mut self, vars: I) -> Launch
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// Sets the working folder.
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Launch {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Makes standard input a pipe from the runtime ([`Child::stdin`]).
    #[must_use]
    pub fn stdin_piped(mut self) -> Launch {
        self.stdin_piped = true;
        self
    }

    /// Starts the process confined by `confinement`, in a cgroup of its own with
    /// `limits` — or, where none can be made, under a reaper (the log says so, naming
    /// `what`). Must be called within a tokio runtime.
    pub fn spawn(
        self,
        confinement: &Confinement,
        limits: CgroupLimits,
        what: &str,
    ) -> io::Result<Child> {
        let cgroup = match ActionCgroup::create(limits) {
            Ok(cgroup) => Some(cgroup),
            Err(why) => {
                tracing::warn!(
                    "no cgroup for {what} ({why}): a reaper kills what it leaves behind, but \
                     its processes and memory are not limited"
                );
                None
            }
        };
        self.spawn_in(confinement, cgroup)
    }

    /// [`Launch::spawn`] with the cgroup already made (`None`: under a reaper).
    ///
    /// Every error names the program.
    pub fn spawn_in(
        self,
        confinement: &Confinement,
        cgroup: Option<ActionCgroup>,
    ) -> io::Result<Child> {
        self.start(confinement, cgroup).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", self.program.to_string_lossy()))
        })
    }

    fn start(&self, confinement: &Confinement, cgroup: Option<ActionCgroup>) -> io::Result<Child> {
        let program = self.resolve()?;
        let cstring = |s: &OsStr, what: &str| {
            CString::new(s.as_bytes()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} holds a NUL byte: {}", s.to_string_lossy()),
                )
            })
        };
        let program = cstring(program.as_os_str(), "the program's path")?;
        let mut argv = vec![program.clone()];
        for arg in &self.args {
            argv.push(cstring(arg, "an argument")?);
        }
        let mut envp = Vec::with_capacity(self.env.len());
        for (name, value) in &self.env {
            let mut pair = name.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            envp.push(cstring(
                OsStr::from_bytes(&pair),
                "an environment variable",
            )?);
        }
        let cwd = self
            .cwd
            .as_deref()
            .map(|d| cstring(d.as_os_str(), "the working folder"))
            .transpose()?;
        let argv_ptrs: Vec<*const libc::c_char> = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp_ptrs: Vec<*const libc::c_char> = envp
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();

        // The child's ends sit above the standard streams, so that putting one in place
        // never overwrites another.
        let stdin = if self.stdin_piped {
            let (read, write) = pipe_pair()?;
            (above_stdio(read)?, Some(write))
        } else {
            let null = std::fs::File::open("/dev/null")?;
            (above_stdio(null.into())?, None)
        };
        let (out_read, out_write) = pipe_pair()?;
        let (err_read, err_write) = pipe_pair()?;
        let (out_write, err_write) = (above_stdio(out_write)?, above_stdio(err_write)?);
        let (error_read, error_write) = pipe_pair()?;
        let reaper_report = if cgroup.is_none() {
            Some(pipe_pair()?)
        } else {
            None
        };
        let plan = Plan {
            program: program.as_ptr(),
            argv: argv_ptrs.as_ptr(),
            envp: envp_ptrs.as_ptr(),
            cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            stdio: [
                stdin.0.as_raw_fd(),
                out_write.as_raw_fd(),
                err_write.as_raw_fd(),
            ],
            error: error_write.as_raw_fd(),
            join: cgroup.as_ref().map(ActionCgroup::join_fds),
            confinement,
            report: reaper_report.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
            applies_all: false,
        };
        let pid = launch(plan)?;
        // The child's ends are the child's now.
        drop((stdin.0, out_write, err_write, error_write));
        let reaper_report = reaper_report.map(|(read, write)| {
            drop(write);
            read
        });
        if let Some((step, errno)) = read_failure(&error_read) {
            // The child has exited, or is about to.
            let _ = wait_for(pid);
            let cause = io::Error::from_raw_os_error(errno);
            let doing = step.map_or("starting it", Step::doing);
            return Err(io::Error::new(cause.kind(), format!("{doing}: {cause}")));
        }
        // Under a reaper, the program's pid comes first on the reaper's report, then its
        // status when it exits (which the waiter reads), then how many processes the
        // reaper killed once it had.
        let (group, reaper, waiter) = match reaper_report {
            Some(report) => {
                let program =
                    read_i32(&report).ok_or_else(|| io::Error::other("its reaper said nothing"))?;
                let report = std::sync::Arc::new(report);
                let status_from = std::sync::Arc::clone(&report);
                let waiter = tokio::task::spawn_blocking(move || match read_i32(&status_from) {
                    Some(raw) => Ok(ExitStatus::from_raw(raw)),
                    // A reaper that was killed says nothing more: its own status.
                    None => wait_for(pid),
                });
                (
                    program,
                    Some(Reaper {
                        pid,
                        report,
                        reaped: false,
                    }),
                    waiter,
                )
            }
            None => (
                pid,
                None,
                tokio::task::spawn_blocking(move || wait_for(pid)),
            ),
        };
        Ok(Child {
            pid,
            group: Some(group),
            stdin: stdin.1.map(pipe::Sender::from_owned_fd).transpose()?,
            stdout: Some(pipe::Receiver::from_owned_fd(out_read)?),
            stderr: Some(pipe::Receiver::from_owned_fd(err_read)?),
            waiter: Some(waiter),
            status: None,
            cgroup,
            reaper,
        })
    }

    /// The program's path: as given when it names a folder, else the first executable
    /// of that name in `PATH`.
    fn resolve(&self) -> io::Result<PathBuf> {
        let program = Path::new(&self.program);
        if self.program.as_bytes().contains(&b'/') {
            return Ok(program.to_owned());
        }
        let path = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| {
                use std::os::unix::fs::PermissionsExt;
                candidate
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found in PATH"))
    }
}

/// A confined process. Dropping it kills the process and everything it started.
pub struct Child {
    pid: libc::pid_t,
    /// The program's process group, until it is killed.
    group: Option<libc::pid_t>,
    /// The program's standard input, when [`Launch::stdin_piped`].
    pub stdin: Option<pipe::Sender>,
    /// The program's standard output.
    pub stdout: Option<pipe::Receiver>,
    /// The program's standard error.
    pub stderr: Option<pipe::Receiver>,
    waiter: Option<JoinHandle<io::Result<ExitStatus>>>,
    status: Option<ExitStatus>,
    cgroup: Option<ActionCgroup>,
    reaper: Option<Reaper>,
}

/// The reaper that stands in for a cgroup.
struct Reaper {
    pid: libc::pid_t,
    /// Where it says the program's pid, its status, then how many processes it killed
    /// once the program had exited.
    report: std::sync::Arc<OwnedFd>,
    /// True once the reaper itself has been waited for.
    reaped: bool,
}

impl Child {
    /// The process id (of the reaper, where one stands between).
    pub fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// True when a cgroup holds the process (false: a reaper).
    pub fn in_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Waits for the program to exit; may be called again (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let waiter = self
            .waiter
            .as_mut()
            .ok_or_else(|| io::Error::other("the process is no longer waited for"))?;
        let status = waiter.await.map_err(io::Error::other)??;
        self.waiter = None;
        self.status = Some(status);
        Ok(status)
    }

    /// Ends everything `handler`'s process started, once the process has stopped or was
    /// told to: when it `exited` by itself, what it left gets
    /// [`LEFT_BEHIND_GRACE`](crate::LEFT_BEHIND_GRACE) and is then counted as left
    /// behind ([`note_left_behind`](crate::note_left_behind)); what a time limit or a
    /// cancel stopped is killed at once. Then the process group is killed, and the
    /// process waited for.
    pub async fn end(&mut self, handler: &str, exited: bool) {
        if let Some(cgroup) = self.cgroup.as_mut() {
            cgroup.end(handler, exited).await;
        }
        if let Some(reaper) = self.reaper.as_mut() {
            if !exited {
                // SAFETY: kill(2) of our own child, which is not reaped yet.
                unsafe {
                    libc::kill(reaper.pid, libc::SIGTERM);
                }
            }
            let (pid, report) = (reaper.pid, std::sync::Arc::clone(&reaper.report));
            let left = tokio::task::spawn_blocking(move || {
                let left = read_i32(&report);
                let _ = wait_for(pid);
                left
            })
            .await
            .ok()
            .flatten();
            reaper.reaped = true;
            if exited && let Some(left) = left {
                crate::note_left_behind(handler, left.unsigned_abs() as usize);
            }
        }
        self.kill_group();
        let _ = self.wait().await;
    }

    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            // SAFETY: kill(2) of the process group made for the program; ESRCH (gone)
            // is fine.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        match &self.reaper {
            Some(reaper) if !reaper.reaped => {
                let pid = reaper.pid;
                // SAFETY: kill(2) of our own child, reaped by the thread below.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
                std::thread::spawn(move || wait_for(pid));
            }
            Some(_) => {}
            None if self.status.is_none() => {
                // SAFETY: our child, reaped by the waiter.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                }
            }
            None => {}
        }
        self.kill_group();
    }
}

/// Everything the child needs, made before it starts: pointers into the parent's
/// memory, which the child shares until it executes the program.
struct Plan<'a> {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    error: RawFd,
    join: Option<JoinFds>,
    confinement: &'a Confinement,
    /// The reaper's report (−1: no reaper).
    report: RawFd,
    /// True when the child installs the seccomp filters and lowers its bounding set
    /// itself (false: it has them from the launcher thread that starts it).
    applies_all: bool,
}

/// A start for a launcher thread. The plan lives on the caller's stack, and the caller
/// waits for the answer.
struct Request {
    plan: *const Plan<'static>,
    answer: mpsc::SyncSender<io::Result<libc::pid_t>>,
}

// SAFETY: the plan is read only while its owner waits for the answer.
unsafe impl Send for Request {}

/// Starts the child of `plan` from the launcher thread of its seccomp filters and
/// bounding set, which the child inherits from that thread at no cost (installing a
/// filter makes the kernel check and cache it, a fifth of a start); where there is no
/// such thread, from this one, the child installing them itself.
fn launch(mut plan: Plan) -> io::Result<libc::pid_t> {
    let inherited = Inherited {
        filters: plan.confinement.filters(),
        bounding: plan.confinement.bounding(),
    };
    if let Some(launcher) = launcher(inherited) {
        let (answer, answered) = mpsc::sync_channel(1);
        let request = Request {
            plan: std::ptr::from_ref(&plan).cast::<Plan<'static>>(),
            answer,
        };
        if launcher.send(request).is_ok()
            && let Ok(started) = answered.recv()
        {
            return started;
        }
    }
    plan.applies_all = true;
    clone_child(&plan, &mut vec![0u8; CHILD_STACK])
}

/// What a child has from the launcher thread that starts it.
#[derive(Clone, Copy)]
struct Inherited {
    /// The seccomp filters (compiled once per set of socket grants, so one slice each).
    filters: &'static [BpfProgram],
    /// The bounding set (see [`Confinement::bounding`]).
    bounding: Option<(u64, u8)>,
}

/// The launcher thread for `inherited`, started on first use; `None` where the filters
/// cannot be installed on a thread or its bounding set lowered (the log says why, once).
fn launcher(inherited: Inherited) -> Option<mpsc::Sender<Request>> {
    type Key = (usize, Option<(u64, u8)>);
    static LAUNCHERS: Mutex<BTreeMap<Key, Option<mpsc::Sender<Request>>>> =
        Mutex::new(BTreeMap::new());
    let mut launchers = LAUNCHERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    launchers
        .entry((inherited.filters.as_ptr() as usize, inherited.bounding))
        .or_insert_with(|| match start_launcher(inherited) {
            Ok(sender) => Some(sender),
            Err(e) => {
                tracing::warn!(
                    "no launcher thread ({e}): each confined process installs its seccomp filters and lowers its bounding set itself"
                );
                None
            }
        })
        .clone()
}

fn start_launcher(inherited: Inherited) -> io::Result<mpsc::Sender<Request>> {
    let (requests, received) = mpsc::channel::<Request>();
    let (ready, readied) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("handrail-launch".into())
        .spawn(move || {
            // SAFETY: a mask on the stack; this thread takes no signal, ever.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            }
            let installed = inherited
                .bounding
                .map_or(Ok(()), |(kept, last)| crate::drop_bounding(kept, last))
                .and_then(|()| crate::apply_filters(inherited.filters));
            let ok = installed.is_ok();
            let _ = ready.send(installed);
            if !ok {
                return;
            }
            let mut stack = vec![0u8; CHILD_STACK];
            for request in received {
                // SAFETY: the requester keeps the plan alive until it has the answer.
                let plan = unsafe { &*request.plan };
                let _ = request.answer.send(clone_child(plan, &mut stack));
            }
        })?;
    readied
        .recv()
        .map_err(|_| io::Error::other("the launcher thread ended"))??;
    Ok(requests)
}

/// Starts the child (under a reaper when the plan has a report) on `stack`; returns its
/// pid.
fn clone_child(plan: &Plan, stack: &mut [u8]) -> io::Result<libc::pid_t> {
    // SAFETY: every signal is blocked while the child shares this thread's memory (a
    // handler must not run there), and the mask is put back after. `clone` runs
    // `child_entry` on `stack`, which outlives it: with CLONE_VFORK this thread is
    // suspended until the child has executed the program or exited. `fork` (for the
    // reaper) copies the process; the copy makes system calls only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = if plan.report >= 0 {
            let pid = libc::fork();
            if pid == 0 {
                reaper_main(plan);
            }
            pid
        } else {
            let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
            libc::clone(
                child_entry,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(plan).cast_mut().cast(),
            )
        };
        let error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        Ok(pid)
    }
}

extern "C" fn child_entry(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start` passes a pointer to a plan that lives until the child executes.
    let plan = unsafe { &*plan.cast::<Plan>() };
    child_main(plan, true)
}

/// The child: standard streams, process group, working folder, cgroup, confinement,
/// then the program. A failure is written to the plan's error pipe (step, errno) and
/// ends the child.
///
/// System calls only, no allocation: the child shares the runtime's memory (or is a
/// copy of a multi-threaded process).
fn child_main(plan: &Plan, own_group: bool) -> ! {
    // SAFETY: system calls on descriptors and strings the plan holds.
    unsafe {
        reset_signals();
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(plan.error, Step::Stdio);
            }
        }
        if own_group && libc::setpgid(0, 0) != 0 {
            fail(plan.error, Step::Group);
        }
        if !plan.cwd.is_null() && libc::chdir(plan.cwd) != 0 {
            fail(plan.error, Step::Cwd);
        }
        if let Some(join) = &plan.join
            && crate::cgroup::join(join).is_err()
        {
            fail(plan.error, Step::Cgroup);
        }
        let confined = if plan.applies_all {
            plan.confinement.apply()
        } else {
            plan.confinement.apply_but_inherited()
        };
        if let Err(e) = confined {
            fail_with(
                plan.error,
                Step::Confine,
                e.raw_os_error().unwrap_or(libc::EPERM),
            );
        }
        libc::execve(plan.program, plan.argv, plan.envp);
        fail(plan.error, Step::Exec)
    }
}

/// Puts every signal back to its default action (those the runtime ignores stay
/// ignored, but `SIGPIPE`, as a program expects) and unblocks them all.
///
/// # Safety
/// For a child before exec: it changes the calling process's signal actions.
unsafe fn reset_signals() {
    // SAFETY: sigaction(2) and sigprocmask(2) with structures on the stack.
    unsafe {
        for signal in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if old.sa_sigaction == libc::SIG_DFL
                || (old.sa_sigaction == libc::SIG_IGN && signal != libc::SIGPIPE)
            {
                continue;
            }
            to_default(signal);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Puts `signal` back to its default action.
fn to_default(signal: libc::c_int) {
    // SAFETY: sigaction(2) with a structure on the stack.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &default, std::ptr::null_mut());
    }
}

/// Writes `step` and the current errno to the error pipe and ends the child.
fn fail(error: RawFd, step: Step) -> ! {
    fail_with(
        error,
        step,
        io::Error::last_os_error().raw_os_error().unwrap_or(0),
    )
}

fn fail_with(error: RawFd, step: Step, errno: libc::c_int) -> ! {
    let mut message = [0u8; 5];
    message[0] = step as u8;
    message[1..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) of a buffer on the stack, then _exit(2).
    unsafe {
        libc::write(error, message.as_ptr().cast(), message.len());
        libc::_exit(CANNOT_EXECUTE)
    }
}

/// The reaper: a process group of its own, the child subreaper of all the program
/// starts. It says the program's pid on its report and waits (its signals stay blocked;
/// it takes them with `sigtimedwait`); says the program's status when it exits; ends
/// what is left; says how many it killed; and exits as the program did.
fn reaper_main(plan: &Plan) -> ! {
    // SAFETY: system calls only, in a copy of the runtime that is single-threaded.
    unsafe {
        libc::setpgid(0, 0);
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            fail(plan.error, Step::Reaper);
        }
        to_default(libc::SIGCHLD);
        let program = libc::fork();
        if program == 0 {
            child_main(plan, true);
        }
        if program < 0 {
            fail(plan.error, Step::Reaper);
        }
        // Nothing of the runtime's stays open here but the report: the program's
        // streams and the error pipe must close when the program ends.
        let report = plan.report;
        close_from(3, report);
        close_from(report + 1, libc::c_int::MAX);
        say(report, program);

        let mut waited: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut waited);
        for signal in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut waited, signal);
        }
        let mut status: Option<libc::c_int> = None;
        let mut stopped = false;
        loop {
            reap_exited(program, &mut status);
            if status.is_some() || stopped {
                break;
            }
            stopped = take_signal(&waited, None) == Some(true);
        }
        let said = status.is_some();
        if let Some(status) = status {
            say(report, status);
        }
        // What the program left may end by itself for a while.
        if !stopped {
            let until = now() + crate::LEFT_BEHIND_GRACE;
            while has_children() {
                let left = until.saturating_sub(now());
                if left.is_zero() || take_signal(&waited, Some(left)) == Some(true) {
                    break;
                }
                reap_exited(program, &mut status);
            }
        }
        reap_exited(program, &mut status);
        let killed = kill_descendants(program, &mut status);
        if !said {
            // A program stopped before it exited: killed.
            say(report, status.unwrap_or(libc::SIGKILL));
        }
        say(report, killed);
        match status {
            Some(status) if libc::WIFEXITED(status) => libc::_exit(libc::WEXITSTATUS(status)),
            Some(status) if libc::WIFSIGNALED(status) => {
                let signal = libc::WTERMSIG(status);
                to_default(signal);
                let mut only: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut only);
                libc::sigaddset(&mut only, signal);
                libc::kill(libc::getpid(), signal);
                libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
                libc::_exit(128 + signal)
            }
            _ => {
                libc::kill(libc::getpid(), libc::SIGKILL);
                libc::_exit(128 + libc::SIGKILL)
            }
        }
    }
}

/// Writes one native-endian `i32` to `fd`.
fn say(fd: RawFd, value: i32) {
    // SAFETY: write(2) of a buffer on the stack.
    unsafe {
        libc::write(fd, value.to_ne_bytes().as_ptr().cast(), 4);
    }
}

/// Closes the descriptors from `first` up to below `end`.
fn close_from(first: RawFd, end: RawFd) {
    if first >= end {
        return;
    }
    // SAFETY: close_range(2) (Linux 5.9) on descriptors of this single-threaded copy;
    // where it is missing, each one is closed.
    unsafe {
        let last = (end - 1) as libc::c_uint;
        if libc::syscall(libc::SYS_close_range, first as libc::c_uint, last, 0) == 0 {
            return;
        }
        let limit = libc::sysconf(libc::_SC_OPEN_MAX).clamp(256, 65536) as RawFd;
        for fd in first..end.min(limit) {
            libc::close(fd);
        }
    }
}

/// Reaps every child that has exited; the program's status goes to `status`.
fn reap_exited(program: libc::pid_t, status: &mut Option<libc::c_int>) {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid(2) into a local.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if pid == program {
            *status = Some(raw);
        }
    }
}

/// Waits (up to `timeout`, or for ever) for one of `set`; `Some(true)` for a signal to
/// stop (not `SIGCHLD`), `None` when the time passed.
fn take_signal(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<bool> {
    let spec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    // SAFETY: sigtimedwait(2) with a set and a time on the stack.
    let signal = unsafe {
        libc::sigtimedwait(
            set,
            std::ptr::null_mut(),
            spec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref),
        )
    };
    (signal > 0).then_some(signal != libc::SIGCHLD)
}

/// The monotonic clock.
fn now() -> Duration {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) into a local.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut spec);
    }
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}

/// True while the calling process has children (exited or not).
fn has_children() -> bool {
    let mut any = false;
    for_each_child(|_| any = true);
    any
}

/// Kills every descendant of the calling process (a subreaper: what outlives its
/// parent comes to it) and reaps them; returns how many it killed (counting up to a
/// bound).
fn kill_descendants(program: libc::pid_t, status: &mut Option<libc::c_int>) -> i32 {
    let mut seen: [libc::pid_t; 512] = [0; 512];
    let mut killed = 0usize;
    loop {
        let mut found = false;
        for_each_child(|pid| {
            found = true;
            // SAFETY: kill(2) of our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            if !seen[..killed.min(seen.len())].contains(&pid) {
                if killed < seen.len() {
                    seen[killed] = pid;
                }
                killed += 1;
            }
        });
        // Reap one (blocking): a child's own children are ours once it has died.
        let mut raw = 0;
        // SAFETY: waitpid(2) into a local.
        let reaped = unsafe { libc::waitpid(-1, &mut raw, 0) };
        if reaped == program {
            *status = Some(raw);
        }
        if reaped < 0 && !found {
            return i32::try_from(killed).unwrap_or(i32::MAX);
        }
    }
}

/// Calls `f` with each child the calling thread has (`/proc/thread-self/children`).
fn for_each_child(mut f: impl FnMut(libc::pid_t)) {
    // SAFETY: open, read and close of a proc file into a buffer on the stack.
    unsafe {
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 1024];
        let mut pid: libc::pid_t = 0;
        let mut in_number = false;
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &byte in &buf[..n as usize] {
                if byte.is_ascii_digit() {
                    pid = pid * 10 + libc::pid_t::from(byte - b'0');
                    in_number = true;
                } else if in_number {
                    f(pid);
                    pid = 0;
                    in_number = false;
                }
            }
        }
        if in_number {
            f(pid);
        }
        libc::close(fd);
    }
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) into a local array; the descriptors are ours.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// The same descriptor, numbered above the standard streams.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl(2) duplicating a descriptor we own; the new one is ours.
    unsafe {
        let new = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3);
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(new))
    }
}

/// What the error pipe says once the child has executed the program (nothing: the
/// pipe closed) or failed (step, errno).
fn read_failure(pipe: &OwnedFd) -> Option<(Option<Step>, libc::c_int)> {
    let mut message = [0u8; 5];
    let mut got = 0;
    while got < message.len() {
        // SAFETY: read(2) into the rest of a buffer on the stack.
        let n = unsafe {
            libc::read(
                pipe.as_raw_fd(),
                message[got..].as_mut_ptr().cast(),
                message.len() - got,
            )
        };
        match n {
            0 => break,
            n if n < 0 => {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            n => got += n as usize,
        }
    }
    (got == message.len()).then(|| {
        let errno = libc::c_int::from_ne_bytes([message[1], message[2], message[3], message[4]]);
        (Step::from_number(message[0]), errno)
    })
}

/// Reads one native-endian `i32` (blocking).
fn read_i32(fd: &OwnedFd) -> Option<i32> {
    let mut bytes = [0u8; 4];
    // SAFETY: read(2) into a buffer on the stack.
    let n = unsafe { libc::read(fd.as_raw_fd(), bytes.as_mut_ptr().cast(), 4) };
    (n == 4).then(|| i32::from_ne_bytes(bytes))
}

/// Waits for `pid` to exit (blocking).
fn wait_for(pid: libc::pid_t) -> io::Result<ExitStatus> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid(2) of our own child into a local.
        if unsafe { libc::waitpid(pid, &mut raw, 0) } == pid {
            return Ok(ExitStatus::from_raw(raw));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
