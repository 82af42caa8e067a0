//! `handrail-docs OUT`: the man pages of `handrail` (`OUT/man/handrail.1` and one per
//! subcommand, `handrail-ddi.1` …) and its shell completions (`OUT/completions/`: bash,
//! zsh, fish), generated from the command line's own definitions, so they never drift
//! from it. `scripts/package.sh` runs it; it is not installed.

#[allow(
    dead_code,
    reason = "the command line's definitions only: what the binary does with them is not here"
)]
#[path = "../args.rs"]
mod args;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: handrail-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handrail-docs: {}: {e}", out.display());
            ExitCode::from(10)
        }
    }
}

fn generate(out: &std::path::Path) -> std::io::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut command = args::Cli::command();
    command.build();
    clap_mangen::generate_to(command.clone(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "handrail", &completions)?;
    }
    Ok(())
}
