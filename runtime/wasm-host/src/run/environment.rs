//! Which environment variables a guest may hand a program it runs.
//!
//! A program starts with an empty environment plus the pairs the guest passes. Pairs that
//! make the dynamic loader, the C library or an interpreter run code or read files the
//! program did not ask for are refused, and the whole `run` fails naming them: a guest
//! granted `/bin/true` must not run its own library as root with `LD_PRELOAD`.
//!
//! | refused | why |
//! |---|---|
//! | `LD_*` | the dynamic loader: preloads, library paths, audit modules |
//! | `GLIBC_TUNABLES`, `MALLOC_*` | the C library's allocator and tunables (`MALLOC_TRACE` writes a file) |
//! | `GCONV_PATH`, `GETCONF_DIR`, `LOCPATH`, `NLSPATH`, `TZDIR` | the C library loads conversion modules, locale, message and time-zone files from there |
//! | `HOSTALIASES`, `LOCALDOMAIN`, `RESOLV_HOST_CONF`, `RES_OPTIONS`, `NIS_PATH` | the resolver reads files or changes lookups |
//! | `BASH_ENV`, `ENV`, `BASH_FUNC_*`, `SHELLOPTS`, `BASHOPTS`, `PS4`, `IFS` | shells run the file, import the functions, or change how every command line is split and traced |
//! | `PYTHON*`, `PERL5*`, `PERLLIB`, `RUBY*`, `NODE_OPTIONS`, `NODE_PATH`, `LUA_*` | interpreters load modules or run code from there |
//!
//! These are the variables glibc itself drops for set-user-id programs (its
//! `UNSECURE_ENVVARS`), plus the shells' and interpreters' own: a program started
//! through `run` is as privileged as the runtime.
//!
//! `TMPDIR` is allowed: it only says where temporary files go (swupdate's handler points
//! it into the work folder), and whether they can be written there is the file
//! confinement's business, not the environment's. `PATH`, `HOME`, `LANG` and the like are
//! allowed too: they choose among files the program may read anyway.
//!
//! A name that is empty or holds `=` or NUL, and a value that holds NUL, cannot be passed
//! as one pair and are refused as well.

/// Names refused exactly.
const REFUSED: &[&str] = &[
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "GETCONF_DIR",
    "LOCPATH",
    "NLSPATH",
    "TZDIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "NIS_PATH",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PERLLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
];

/// Name prefixes refused.
const REFUSED_PREFIXES: &[&str] = &[
    "LD_",
    "MALLOC_",
    "BASH_FUNC_",
    "PYTHON",
    "PERL5",
    "RUBY",
    "LUA_",
];

/// True when a program may get `name` in its environment.
fn allowed(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['=', '\0'])
        && !REFUSED.contains(&name)
        && !REFUSED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Checks a guest's environment pairs: `Err` names every refused one, with why.
pub(crate) fn check(env: &[(String, String)]) -> Result<(), String> {
    let refused: Vec<&str> = env
        .iter()
        .filter(|(name, value)| !allowed(name) || value.contains('\0'))
        .map(|(name, _)| name.as_str())
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the environment may not set {}: loader, C library, shell and interpreter variables \
         would make the program run code or read files it did not ask for, and a name must \
         be non-empty without `=` or NUL, a value without NUL",
        refused.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), "x".to_owned()))
            .collect()
    }

    #[test]
    fn loader_shell_and_interpreter_variables_are_refused_by_name() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GCONV_PATH",
            "GETCONF_DIR",
            "HOSTALIASES",
            "LOCALDOMAIN",
            "NLSPATH",
            "RESOLV_HOST_CONF",
            "MALLOC_TRACE",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_ls%%",
            "SHELLOPTS",
            "PS4",
            "IFS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5LIB",
            "PERL5OPT",
            "PERLLIB",
            "RUBYOPT",
            "NODE_OPTIONS",
            "GLIBC_TUNABLES",
            "",
            "A=B",
        ] {
            let err = check(&pairs(&["PATH", name])).unwrap_err();
            assert!(err.contains(&format!("set {name}:")), "{name}: {err}");
        }
    }

    #[test]
    fn every_refused_name_is_named_once() {
        let err = check(&pairs(&["LD_PRELOAD", "HOME", "BASH_ENV"])).unwrap_err();
        assert!(err.contains("set LD_PRELOAD, BASH_ENV:"), "{err}");
    }

    #[test]
    fn ordinary_variables_and_tmpdir_pass() {
        let env = pairs(&[
            "PATH",
            "HOME",
            "LANG",
            "TMPDIR",
            "DEBIAN_FRONTEND",
            "GREETING",
        ]);
        assert_eq!(check(&env), Ok(()));
        assert_eq!(
            check(&[("A".into(), "nul\0".into())]).map_err(|_| ()),
            Err(())
        );
    }
}
