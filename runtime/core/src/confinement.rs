//! What a registration asks for when the kernel cannot confine its handler.
//!
//! `config.landlock` in a registration, for a native handler's worker and for the
//! programs any handler starts through `run`:
//!
//! | value | where Landlock is unavailable |
//! |---|---|
//! | `"require"` (default) | the handler is refused, with an error that says why |
//! | `"best-effort"` | the handler runs unconfined, with a warning in the log |
//!
//! Rules that Landlock enforces only in part (an older kernel handles fewer kinds of
//! access) count as enforced: reading and writing files is confined from the first
//! Landlock version on.
//!
//! Two grants of a registration's `[capabilities]` reach past the files:
//! [`SocketFamily`] (`sockets`: which sockets the handler's processes may open; none
//! by default) and [`Privilege`] (`privileges`: which Linux capabilities they keep;
//! none by default, even when the runtime runs as root).

use serde::{Deserialize, Serialize};

/// A kind of socket a registration may grant in `capabilities.sockets`. Without a
/// grant, a handler's processes open no socket at all but `socketpair` pairs (they
/// reach nothing outside).
///
/// | value | opens |
/// |---|---|
/// | `"ip"` | IPv4 and IPv6 sockets (TCP, UDP; raw ones also need `CAP_NET_RAW`): the network |
/// | `"unix"` | UNIX-domain sockets: other programs' services on this device, such as the service manager (`systemctl`) or the system bus, which act as root on the caller's behalf |
/// | `"netlink"` | netlink sockets: the kernel's network configuration and events |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketFamily {
    /// `AF_INET` and `AF_INET6`.
    Ip,
    /// `AF_UNIX`.
    Unix,
    /// `AF_NETLINK`.
    Netlink,
}

/// The Linux capabilities by number, as the kernel names them (`capability.h`).
const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A Linux capability a registration lets its handler's processes keep, in
/// `capabilities.privileges`, named as the kernel names it (`"CAP_CHOWN"`).
///
/// Every other capability is dropped before a program or native worker starts, from
/// all its sets and the bounding set, so a root program keeps only these and nothing it
/// executes gains more.
///
/// ```
/// use handrail::confinement::Privilege;
/// let chown: Privilege = "CAP_CHOWN".parse().unwrap();
/// assert_eq!((chown.number(), chown.name()), (0, "CAP_CHOWN"));
/// assert!("CAP_EVERYTHING".parse::<Privilege>().unwrap_err().contains("CAP_EVERYTHING"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Privilege(u8);

impl Privilege {
    /// The capability's number (`CAP_CHOWN` is 0).
    pub fn number(self) -> u8 {
        self.0
    }

    /// The capability's name.
    pub fn name(self) -> &'static str {
        CAPABILITY_NAMES[usize::from(self.0)]
    }

    /// Every capability the kernel headers this runtime knows name.
    pub fn all() -> impl Iterator<Item = Privilege> {
        (0..CAPABILITY_NAMES.len()).map(|n| Privilege(n as u8))
    }
}

impl std::str::FromStr for Privilege {
    type Err = String;

    fn from_str(s: &str) -> Result<Privilege, String> {
        CAPABILITY_NAMES
            .iter()
            .position(|name| *name == s)
            .map(|n| Privilege(n as u8))
            .ok_or_else(|| {
                format!("`{s}` is not a Linux capability (they are named as CAP_CHOWN is)")
            })
    }
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Privilege {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Privilege {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Privilege, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The registration key.
pub const CONFIG_KEY: &str = "landlock";

/// The registration's policy for a kernel without Landlock or without seccomp filters
/// (a kernel built without them, or an emulator such as qemu-user that answers their
/// system calls itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockPolicy {
    /// Refuse to run the handler without it.
    #[default]
    Require,
    /// Run it without, with a warning.
    BestEffort,
}

/// A kernel feature confinement is built on, that a kernel may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFeature {
    /// Landlock: the files and TCP ports a process reaches.
    Landlock,
    /// seccomp filters: the system calls it makes.
    Seccomp,
}

impl KernelFeature {
    fn name(self) -> &'static str {
        match self {
            KernelFeature::Landlock => "Landlock",
            KernelFeature::Seccomp => "seccomp filtering",
        }
    }

    /// What a handler run without it can do, for people.
    fn without(self) -> &'static str {
        match self {
            KernelFeature::Landlock => {
                "the handler runs UNCONFINED (it can read and write whatever the runtime can)"
            }
            KernelFeature::Seccomp => {
                "the handler runs WITHOUT its seccomp filter (it can reach every system call its capabilities allow: mount, reboot, namespaces, sockets of any family)"
            }
        }
    }
}

impl LandlockPolicy {
    /// The policy a registration's `[config]` table asks for.
    ///
    /// ```
    /// use handrail::confinement::LandlockPolicy;
    /// let config = serde_json::json!({"landlock": "best-effort"});
    /// let config = config.as_object().unwrap();
    /// assert_eq!(LandlockPolicy::from_config(config), Ok(LandlockPolicy::BestEffort));
    /// assert_eq!(LandlockPolicy::from_config(&Default::default()), Ok(LandlockPolicy::Require));
    /// ```
    pub fn from_config(
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<LandlockPolicy, String> {
        match config.get(CONFIG_KEY) {
            None => Ok(LandlockPolicy::Require),
            Some(serde_json::Value::String(s)) if s == "require" => Ok(LandlockPolicy::Require),
            Some(serde_json::Value::String(s)) if s == "best-effort" => {
                Ok(LandlockPolicy::BestEffort)
            }
            Some(other) => Err(format!(
                "config.{CONFIG_KEY}: {other} is not \"require\" or \"best-effort\""
            )),
        }
    }

    /// What to do with a native worker or a program the kernel cannot confine with
    /// `feature`, `status` saying why for people: `Ok(None)` to go on confined
    /// (`available`), `Ok(Some(warning))` to go on without it, `Err(reason)` to refuse.
    ///
    /// ```
    /// use handrail::confinement::{KernelFeature, LandlockPolicy};
    /// let refused = LandlockPolicy::Require.judge(KernelFeature::Seccomp, false, "ENOSYS");
    /// assert!(refused.unwrap_err().contains("seccomp filtering is not available"));
    /// let warned = LandlockPolicy::BestEffort.judge(KernelFeature::Seccomp, false, "ENOSYS");
    /// assert!(warned.unwrap().unwrap().contains("WITHOUT its seccomp filter"));
    /// ```
    pub fn judge(
        self,
        feature: KernelFeature,
        available: bool,
        status: &str,
    ) -> Result<Option<String>, String> {
        let name = feature.name();
        match (available, self) {
            (true, _) => Ok(None),
            (false, LandlockPolicy::Require) => Err(format!(
                "{name} is not available on this kernel ({status}), so the handler cannot be confined; \
                 its registration requires confinement (config.{CONFIG_KEY} = \"require\", the default). \
                 Set config.{CONFIG_KEY} = \"best-effort\" to run it without {name}"
            )),
            (false, LandlockPolicy::BestEffort) => Ok(Some(format!(
                "{name} is not available on this kernel ({status}); {}, as its registration allows \
                 (config.{CONFIG_KEY} = \"best-effort\")",
                feature.without()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_key() {
        for bad in [serde_json::json!("off"), serde_json::json!(true)] {
            let mut config = serde_json::Map::new();
            config.insert(CONFIG_KEY.into(), bad);
            let err = LandlockPolicy::from_config(&config).unwrap_err();
            assert!(err.starts_with("config.landlock:"), "{err}");
        }
    }

    #[test]
    fn require_refuses_and_best_effort_warns_without_landlock() {
        for policy in [LandlockPolicy::Require, LandlockPolicy::BestEffort] {
            assert_eq!(
                policy.judge(KernelFeature::Landlock, true, "ABI 6"),
                Ok(None)
            );
        }
        let refused = LandlockPolicy::Require
            .judge(KernelFeature::Landlock, false, "not implemented")
            .unwrap_err();
        assert!(
            refused.contains("not available on this kernel (not implemented)")
                && refused.contains("best-effort"),
            "{refused}"
        );
        let warning = LandlockPolicy::BestEffort
            .judge(KernelFeature::Landlock, false, "not enabled")
            .unwrap()
            .unwrap();
        assert!(warning.contains("UNCONFINED"), "{warning}");
    }
}
