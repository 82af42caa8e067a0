//! `broken/leaves-process:1`: its install starts a shell that puts a `sleep` in the
//! background and exits at once, leaving it running. Breaks HC-011 (what an action
//! starts ends with it). Its registration must grant `/bin/sh`.

use handrail_sdk::host::{self, Arg};
use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes, extended};

/// The handler.
pub struct LeavesProcess;

impl Handler for LeavesProcess {
    const ID: &'static str = "broken/leaves-process:1";
    const ACTIONS: &'static [Action] = &[Action::Install];

    fn install(_step: &StepContext) -> ResultFile {
        let started = host::run(
            "/bin/sh",
            &[
                Arg::Literal("-c".into()),
                Arg::Literal("sleep 1000 >/dev/null 2>&1 &".into()),
            ],
            &[],
            None,
        );
        match started {
            Ok(out) if out.exit_code == Some(0) => {
                ResultFile::new(codes::INSTALL_SUCCESS, "installed, and left a sleep behind")
            }
            other => ResultFile::failure(
                extended(codes::COMPONENT_CUSTOM, 1),
                format!("cannot start the shell: {other:?}"),
            ),
        }
    }
}

handrail_sdk::export!(LeavesProcess);
