//! Actions, result codes and extended result codes, compatible with Azure Device Update.
//!
//! A result code greater than zero is a success of some kind, zero or less a failure.
//! Each action has its own band of codes (500s for download, 600s for install, …). A
//! handler that answers an action with a success code of another band is out of phase:
//! like ADU's agent, the runtime still counts it as success (and logs a warning); the
//! conformance kit fails the handler for it.
//!
//! An extended result code packs `facility (bits 28–31) | component (bits 20–27) |
//! code (bits 0–19)`. Handrail's own codes use facility 3 (step handler) and component
//! [`COMPONENT_RUNTIME`], so they never collide with ADU's own components.
//!
//! ```
//! use handrail_contract::codes::{self, Action};
//! assert!(Action::Install.accepts(codes::INSTALL_REQUIRED_REBOOT));
//! assert!(!Action::Install.accepts(codes::APPLY_SUCCESS));
//! assert!(codes::is_success(codes::IS_INSTALLED_INSTALLED));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Generic failure.
pub const FAILURE: i32 = 0;
/// The action was cancelled.
pub const FAILURE_CANCELLED: i32 = -1;
/// Generic success.
pub const SUCCESS: i32 = 1;

/// Download succeeded.
pub const DOWNLOAD_SUCCESS: i32 = 500;
/// Download still in progress (asynchronous handlers).
pub const DOWNLOAD_IN_PROGRESS: i32 = 501;
/// Download skipped: the file already exists.
pub const DOWNLOAD_SKIPPED_FILE_EXISTS: i32 = 502;
/// Download skipped: the update is already installed.
pub const DOWNLOAD_SKIPPED_UPDATE_ALREADY_INSTALLED: i32 = 503;
/// Download skipped: no component matched the step.
pub const DOWNLOAD_SKIPPED_NO_MATCHING_COMPONENTS: i32 = 504;

/// Install succeeded.
pub const INSTALL_SUCCESS: i32 = 600;
/// Install still in progress.
pub const INSTALL_IN_PROGRESS: i32 = 601;
/// Install skipped: already installed.
pub const INSTALL_SKIPPED_UPDATE_ALREADY_INSTALLED: i32 = 603;
/// Install skipped: no component matched the step.
pub const INSTALL_SKIPPED_NO_MATCHING_COMPONENTS: i32 = 604;
/// Install done; the device must reboot before anything else runs.
pub const INSTALL_REQUIRED_IMMEDIATE_REBOOT: i32 = 605;
/// Install done; the device must reboot once the current step has finished.
pub const INSTALL_REQUIRED_REBOOT: i32 = 606;
/// Install done; the agent must restart before anything else runs.
pub const INSTALL_REQUIRED_IMMEDIATE_AGENT_RESTART: i32 = 607;
/// Install done; the agent must restart once the current step has finished.
pub const INSTALL_REQUIRED_AGENT_RESTART: i32 = 608;

/// Apply succeeded.
pub const APPLY_SUCCESS: i32 = 700;
/// Apply still in progress.
pub const APPLY_IN_PROGRESS: i32 = 701;
/// Apply done; immediate reboot required.
pub const APPLY_REQUIRED_IMMEDIATE_REBOOT: i32 = 705;
/// Apply done; reboot required after the current step.
pub const APPLY_REQUIRED_REBOOT: i32 = 706;
/// Apply done; immediate agent restart required.
pub const APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART: i32 = 707;
/// Apply done; agent restart required after the current step.
pub const APPLY_REQUIRED_AGENT_RESTART: i32 = 708;

/// Cancel succeeded.
pub const CANCEL_SUCCESS: i32 = 800;
/// The handler could not cancel.
pub const CANCEL_UNABLE_TO_CANCEL: i32 = 801;

/// The step's installed criteria are met.
pub const IS_INSTALLED_INSTALLED: i32 = 900;
/// The step's installed criteria are not met.
pub const IS_INSTALLED_NOT_INSTALLED: i32 = 901;

/// Backup succeeded.
pub const BACKUP_SUCCESS: i32 = 1000;
/// The handler has no backup; nothing was saved.
pub const BACKUP_SUCCESS_UNSUPPORTED: i32 = 1001;
/// Backup still in progress.
pub const BACKUP_IN_PROGRESS: i32 = 1002;

/// Restore succeeded.
pub const RESTORE_SUCCESS: i32 = 1100;
/// The handler has no restore; nothing was restored.
pub const RESTORE_SUCCESS_UNSUPPORTED: i32 = 1101;
/// Restore still in progress.
pub const RESTORE_IN_PROGRESS: i32 = 1102;
/// Restore done; immediate reboot required.
pub const RESTORE_REQUIRED_IMMEDIATE_REBOOT: i32 = 1105;
/// Restore done; reboot required after the current step.
pub const RESTORE_REQUIRED_REBOOT: i32 = 1106;
/// Restore done; immediate agent restart required.
pub const RESTORE_REQUIRED_IMMEDIATE_AGENT_RESTART: i32 = 1107;
/// Restore done; agent restart required after the current step.
pub const RESTORE_REQUIRED_AGENT_RESTART: i32 = 1108;

/// True when `code` reports success (ADU: any code above zero).
pub const fn is_success(code: i32) -> bool {
    code > 0
}

/// One operation of a step handler.
///
/// The engine runs ADU's two phases: for every step [`IsInstalled`](Action::IsInstalled)
/// and [`Download`](Action::Download); then, step by step, `IsInstalled` again,
/// [`Backup`](Action::Backup), [`Install`](Action::Install), [`Apply`](Action::Apply),
/// and [`Restore`](Action::Restore) when install or apply fails.
/// [`Cancel`](Action::Cancel) is sent to a handler whose action is being cancelled.
///
/// ```
/// use handrail_contract::Action;
/// assert_eq!("is-installed".parse::<Action>().unwrap(), Action::IsInstalled);
/// assert_eq!(Action::Install.to_string(), "install");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Are the step's installed criteria met? (900 / 901)
    IsInstalled,
    /// Fetch or stage what the step needs (500s).
    Download,
    /// Save what a later restore needs (1000s).
    Backup,
    /// Install the update (600s).
    Install,
    /// Make the installed update take effect (700s).
    Apply,
    /// Undo a failed install or apply from the backup (1100s).
    Restore,
    /// Stop the action in progress (800s).
    Cancel,
}

impl Action {
    /// Every action, in the order the contract lists them.
    pub const ALL: [Action; 7] = [
        Action::IsInstalled,
        Action::Download,
        Action::Backup,
        Action::Install,
        Action::Apply,
        Action::Restore,
        Action::Cancel,
    ];

    /// The kebab-case name used in the WIT world, the journal and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::IsInstalled => "is-installed",
            Action::Download => "download",
            Action::Backup => "backup",
            Action::Install => "install",
            Action::Apply => "apply",
            Action::Restore => "restore",
            Action::Cancel => "cancel",
        }
    }

    /// The success code for this action.
    pub const fn success_code(self) -> i32 {
        match self {
            Action::IsInstalled => IS_INSTALLED_NOT_INSTALLED,
            Action::Download => DOWNLOAD_SUCCESS,
            Action::Backup => BACKUP_SUCCESS,
            Action::Install => INSTALL_SUCCESS,
            Action::Apply => APPLY_SUCCESS,
            Action::Restore => RESTORE_SUCCESS,
            Action::Cancel => CANCEL_SUCCESS,
        }
    }

    /// The code a handler that does not implement this action answers with.
    ///
    /// Backup and restore have dedicated "unsupported" successes (1001, 1101); download
    /// is skipped (502, nothing to fetch); is-installed reports "not installed" so the
    /// step runs; cancel reports "unable to cancel". Install and apply have no neutral
    /// answer: an unsupported install or apply is a failure.
    pub const fn unsupported_code(self) -> i32 {
        match self {
            Action::IsInstalled => IS_INSTALLED_NOT_INSTALLED,
            Action::Download => DOWNLOAD_SKIPPED_FILE_EXISTS,
            Action::Backup => BACKUP_SUCCESS_UNSUPPORTED,
            Action::Restore => RESTORE_SUCCESS_UNSUPPORTED,
            Action::Cancel => CANCEL_UNABLE_TO_CANCEL,
            Action::Install | Action::Apply => FAILURE,
        }
    }

    /// True when `code` is a valid answer to this action: a failure (≤ 0) or one of the
    /// action's own success codes. "In progress" codes are not accepted: handlers run
    /// each action to completion.
    pub const fn accepts(self, code: i32) -> bool {
        if code <= 0 {
            return true;
        }
        match self {
            Action::IsInstalled => {
                matches!(code, IS_INSTALLED_INSTALLED | IS_INSTALLED_NOT_INSTALLED)
            }
            Action::Download => matches!(
                code,
                SUCCESS
                    | DOWNLOAD_SUCCESS
                    | DOWNLOAD_SKIPPED_FILE_EXISTS
                    | DOWNLOAD_SKIPPED_UPDATE_ALREADY_INSTALLED
                    | DOWNLOAD_SKIPPED_NO_MATCHING_COMPONENTS
            ),
            Action::Backup => matches!(code, SUCCESS | BACKUP_SUCCESS | BACKUP_SUCCESS_UNSUPPORTED),
            Action::Install => matches!(
                code,
                SUCCESS
                    | INSTALL_SUCCESS
                    | INSTALL_SKIPPED_UPDATE_ALREADY_INSTALLED
                    | INSTALL_SKIPPED_NO_MATCHING_COMPONENTS
                    | INSTALL_REQUIRED_IMMEDIATE_REBOOT
                    | INSTALL_REQUIRED_REBOOT
                    | INSTALL_REQUIRED_IMMEDIATE_AGENT_RESTART
                    | INSTALL_REQUIRED_AGENT_RESTART
            ),
            Action::Apply => matches!(
                code,
                SUCCESS
                    | APPLY_SUCCESS
                    | APPLY_REQUIRED_IMMEDIATE_REBOOT
                    | APPLY_REQUIRED_REBOOT
                    | APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART
                    | APPLY_REQUIRED_AGENT_RESTART
            ),
            Action::Restore => matches!(
                code,
                SUCCESS
                    | RESTORE_SUCCESS
                    | RESTORE_SUCCESS_UNSUPPORTED
                    | RESTORE_REQUIRED_IMMEDIATE_REBOOT
                    | RESTORE_REQUIRED_REBOOT
                    | RESTORE_REQUIRED_IMMEDIATE_AGENT_RESTART
                    | RESTORE_REQUIRED_AGENT_RESTART
            ),
            Action::Cancel => matches!(code, SUCCESS | CANCEL_SUCCESS | CANCEL_UNABLE_TO_CANCEL),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an action name that is not part of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown action `{}` (expected one of: is-installed, download, backup, install, apply, restore, cancel)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// What a result code asks of the agent after the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interruption {
    /// Reboot the device now; nothing else runs first.
    ImmediateReboot,
    /// Reboot the device once the current step has finished.
    DeferredReboot,
    /// Restart the agent now.
    ImmediateAgentRestart,
    /// Restart the agent once the current step has finished.
    DeferredAgentRestart,
}

impl Interruption {
    /// The interruption a result code asks for, if any (605–608, 705–708, 1105–1108).
    ///
    /// ```
    /// use handrail_contract::codes::{self, Interruption};
    /// assert_eq!(Interruption::of(codes::APPLY_REQUIRED_REBOOT), Some(Interruption::DeferredReboot));
    /// assert_eq!(Interruption::of(codes::APPLY_SUCCESS), None);
    /// ```
    pub const fn of(code: i32) -> Option<Interruption> {
        match code {
            INSTALL_REQUIRED_IMMEDIATE_REBOOT
            | APPLY_REQUIRED_IMMEDIATE_REBOOT
            | RESTORE_REQUIRED_IMMEDIATE_REBOOT => Some(Interruption::ImmediateReboot),
            INSTALL_REQUIRED_REBOOT | APPLY_REQUIRED_REBOOT | RESTORE_REQUIRED_REBOOT => {
                Some(Interruption::DeferredReboot)
            }
            INSTALL_REQUIRED_IMMEDIATE_AGENT_RESTART
            | APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART
            | RESTORE_REQUIRED_IMMEDIATE_AGENT_RESTART => Some(Interruption::ImmediateAgentRestart),
            INSTALL_REQUIRED_AGENT_RESTART
            | APPLY_REQUIRED_AGENT_RESTART
            | RESTORE_REQUIRED_AGENT_RESTART => Some(Interruption::DeferredAgentRestart),
            _ => None,
        }
    }

    /// True for the immediate kinds, which stop the run before the step's next action.
    pub const fn is_immediate(self) -> bool {
        matches!(
            self,
            Interruption::ImmediateReboot | Interruption::ImmediateAgentRestart
        )
    }

    /// True when the device (not just the agent) must restart.
    pub const fn is_reboot(self) -> bool {
        matches!(
            self,
            Interruption::ImmediateReboot | Interruption::DeferredReboot
        )
    }
}

/// Facility of step handlers (bits 28–31 of an extended code).
pub const FACILITY_STEP_HANDLER: u8 = 3;
/// ADU component: common code shared by handlers.
pub const COMPONENT_COMMON: u8 = 0;
/// ADU component: SWUpdate handler.
pub const COMPONENT_SWUPDATE: u8 = 1;
/// ADU component: apt handler.
pub const COMPONENT_APT: u8 = 2;
/// ADU component: simulator handler.
pub const COMPONENT_SIMULATOR: u8 = 3;
/// ADU component: steps handler (multi-step workflows).
pub const COMPONENT_STEPS: u8 = 4;
/// ADU component: script handler.
pub const COMPONENT_SCRIPT: u8 = 5;
/// ADU component: custom (vendor) handlers.
pub const COMPONENT_CUSTOM: u8 = 32;
/// Handrail's own component: failures the runtime detects on a handler's behalf.
pub const COMPONENT_RUNTIME: u8 = 0x48;

/// A 32-bit extended result code: `facility | component | code`.
///
/// ```
/// use handrail_contract::ExtendedCode;
/// let erc = ExtendedCode::new(3, 5, 0x205);
/// assert_eq!(erc.value(), 0x3050_0205);
/// assert_eq!((erc.facility(), erc.component(), erc.code()), (3, 5, 0x205));
/// assert_eq!(erc.to_string(), "0x30500205");
/// assert_eq!(ExtendedCode::child_exit(3, 5, 2).value(), 0x3050_1002);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExtendedCode(i32);

impl ExtendedCode {
    /// Packs a facility (4 bits), component (8 bits) and code (20 bits; extra bits are
    /// dropped).
    pub const fn new(facility: u8, component: u8, code: u32) -> Self {
        let v = ((facility as u32 & 0xF) << 28) | ((component as u32) << 20) | (code & 0xF_FFFF);
        ExtendedCode(v as i32)
    }

    /// The code a child process exiting with `exit` maps to: `0x1000 + exit`.
    pub const fn child_exit(facility: u8, component: u8, exit: u8) -> Self {
        Self::new(facility, component, 0x1000 + exit as u32)
    }

    /// Wraps a raw value as it appears in a result file.
    pub const fn from_raw(raw: i32) -> Self {
        ExtendedCode(raw)
    }

    /// The raw 32-bit value as written in result files (`extendedResultCode`).
    pub const fn value(self) -> i32 {
        self.0
    }

    /// Bits 28–31.
    pub const fn facility(self) -> u8 {
        ((self.0 as u32) >> 28) as u8
    }

    /// Bits 20–27.
    pub const fn component(self) -> u8 {
        (((self.0 as u32) >> 20) & 0xFF) as u8
    }

    /// Bits 0–19.
    pub const fn code(self) -> u32 {
        (self.0 as u32) & 0xF_FFFF
    }
}

impl fmt::Display for ExtendedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0 as u32)
    }
}

/// Extended codes the runtime reports on a handler's behalf
/// (facility 3, component [`COMPONENT_RUNTIME`]).
///
/// | code | meaning |
/// |---|---|
/// | `0x34800001` | result file missing |
/// | `0x34800002` | result file larger than the limit |
/// | `0x34800003` | result file is not valid UTF-8 |
/// | `0x34800004` | result file is not the expected JSON object |
/// | `0x34800005` | result code not valid for the action (out of phase) |
/// | `0x34800006` | failure reported with extended code 0 |
/// | `0x34800010` | handler trapped or panicked |
/// | `0x34800011` | action exceeded its time limit |
/// | `0x34800012` | handler exceeded its memory limit |
/// | `0x34800013` | action cancelled |
/// | `0x34800014` | handler could not be loaded |
/// | `0x34800015` | no handler registered for the step's handler id |
/// | `0x34800016` | action not supported by the handler (install/apply) |
/// | `0x34800017` | host failure around the action (work folder, I/O) |
/// | `0x34800018` | worker process crashed or exited |
/// | `0x34800019` | capability not granted |
/// | `0x34800020` | payload file missing for the step |
/// | `0x34800021` | no component matched the step |
/// | `0x34800022` | the update is not running after the reboot or restart it asked for |
/// | `0x34800023` | the action went over its disk budget (`limits.disk_mib`, `[deployment] reserve_mib`) and was stopped |
/// | `0x34800024` | the action was interrupted by a crash `[deployment] max_interrupted_runs` times and is not run again |
/// | `0x34800025` | the handler's registration changed since the deployment was admitted |
pub mod ext {
    use super::{COMPONENT_RUNTIME, ExtendedCode, FACILITY_STEP_HANDLER};

    const fn rt(code: u32) -> ExtendedCode {
        ExtendedCode::new(FACILITY_STEP_HANDLER, COMPONENT_RUNTIME, code)
    }

    /// The handler wrote no result file.
    pub const RESULT_FILE_MISSING: ExtendedCode = rt(0x01);
    /// The result file is larger than the limit.
    pub const RESULT_FILE_TOO_LARGE: ExtendedCode = rt(0x02);
    /// The result file is not valid UTF-8.
    pub const RESULT_FILE_NOT_UTF8: ExtendedCode = rt(0x03);
    /// The result file is not the expected JSON object.
    pub const RESULT_FILE_MALFORMED: ExtendedCode = rt(0x04);
    /// The result code is not one the action may answer with. The runtime no longer
    /// reports it (an out-of-phase success code counts as success, as in ADU); the code
    /// stays reserved, as reports kept in history may carry it.
    pub const RESULT_OUT_OF_PHASE: ExtendedCode = rt(0x05);
    /// The handler reported failure but no extended code; the runtime supplies this one.
    pub const FAILURE_WITHOUT_CODE: ExtendedCode = rt(0x06);
    /// The handler trapped (WebAssembly) or panicked.
    pub const HANDLER_TRAPPED: ExtendedCode = rt(0x10);
    /// The action ran past its time limit.
    pub const TIMED_OUT: ExtendedCode = rt(0x11);
    /// The handler exceeded its memory limit.
    pub const MEMORY_LIMIT: ExtendedCode = rt(0x12);
    /// The action was cancelled.
    pub const CANCELLED: ExtendedCode = rt(0x13);
    /// The handler could not be loaded (artifact, hash, ABI or compile failure).
    pub const LOAD_FAILED: ExtendedCode = rt(0x14);
    /// No handler is registered for the step's handler id.
    pub const HANDLER_NOT_REGISTERED: ExtendedCode = rt(0x15);
    /// The handler does not support a required action (install or apply).
    pub const ACTION_UNSUPPORTED: ExtendedCode = rt(0x16);
    /// The host failed around the action (work folder, I/O).
    pub const HOST_FAILURE: ExtendedCode = rt(0x17);
    /// The native handler's worker process crashed or exited.
    pub const WORKER_DIED: ExtendedCode = rt(0x18);
    /// The handler asked for something its registration does not grant.
    pub const CAPABILITY_DENIED: ExtendedCode = rt(0x19);
    /// A payload file named by the step is missing.
    pub const PAYLOAD_MISSING: ExtendedCode = rt(0x20);
    /// No component matched the step.
    pub const NO_MATCHING_COMPONENTS: ExtendedCode = rt(0x21);
    /// After the reboot or restart it asked for, the step's update is not running
    /// (`is-installed` answered 901).
    pub const NOT_RUNNING_AFTER_RESTART: ExtendedCode = rt(0x22);
    /// The action went over its disk budget: its work folder held more than the
    /// registration's `limits.disk_mib`, or the state directory's file system fell under
    /// the space the runtime keeps for its records; the runtime stopped it.
    pub const DISK_BUDGET: ExtendedCode = rt(0x23);
    /// The action was interrupted by a crash (the agent killed, the power cut) as many
    /// times in a row as `[deployment] max_interrupted_runs` allows; it is not run again.
    pub const INTERRUPTED_TOO_OFTEN: ExtendedCode = rt(0x24);
    /// The handler's registration (its artifact, grants, limits or config) changed since
    /// the deployment was admitted; the changed handler is not run.
    pub const HANDLER_CHANGED: ExtendedCode = rt(0x25);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_its_name() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        assert!("reboot".parse::<Action>().is_err());
    }

    #[test]
    fn bands_do_not_overlap() {
        for a in Action::ALL {
            for b in Action::ALL {
                if a != b && a != Action::IsInstalled {
                    let own = a.success_code();
                    assert!(
                        !b.accepts(own) || own == SUCCESS,
                        "{b} accepts {own} from {a}"
                    );
                }
            }
        }
        assert!(Action::Download.accepts(FAILURE_CANCELLED));
        assert!(!Action::Install.accepts(INSTALL_IN_PROGRESS));
    }

    #[test]
    fn interruption_kinds() {
        for c in [605, 607, 705, 707, 1105, 1107] {
            assert!(Interruption::of(c).unwrap().is_immediate(), "{c}");
        }
        for c in [606, 608, 706, 708, 1106, 1108] {
            assert!(!Interruption::of(c).unwrap().is_immediate(), "{c}");
        }
        assert!(Interruption::of(605).unwrap().is_reboot());
        assert!(!Interruption::of(708).unwrap().is_reboot());
    }

    #[test]
    fn runtime_codes_are_distinct_and_in_our_component() {
        let all = [
            ext::RESULT_FILE_MISSING,
            ext::RESULT_FILE_TOO_LARGE,
            ext::RESULT_FILE_NOT_UTF8,
            ext::RESULT_FILE_MALFORMED,
            ext::RESULT_OUT_OF_PHASE,
            ext::FAILURE_WITHOUT_CODE,
            ext::HANDLER_TRAPPED,
            ext::TIMED_OUT,
            ext::MEMORY_LIMIT,
            ext::CANCELLED,
            ext::LOAD_FAILED,
            ext::HANDLER_NOT_REGISTERED,
            ext::ACTION_UNSUPPORTED,
            ext::HOST_FAILURE,
            ext::WORKER_DIED,
            ext::CAPABILITY_DENIED,
            ext::PAYLOAD_MISSING,
            ext::NO_MATCHING_COMPONENTS,
            ext::NOT_RUNNING_AFTER_RESTART,
        ];
        let mut seen = std::collections::HashSet::new();
        for c in all {
            assert!(seen.insert(c), "{c} twice");
            assert_eq!(c.facility(), FACILITY_STEP_HANDLER);
            assert_eq!(c.component(), COMPONENT_RUNTIME);
        }
        assert_eq!(ext::RESULT_FILE_MISSING.to_string(), "0x34800001");
    }
}
