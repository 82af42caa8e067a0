//! Runtime configuration: the device's identity, deployment policy and hooks, from TOML.
//!
//! ```toml
//! [device]                      # matched against a manifest's `compatibility`
//! manufacturer = "contoso"
//! model = "demo-device"
//! group = "lab"                 # any further key is a device property too
//! # architecture and os are detected (x86_64, linux); set them here to override
//!
//! [deployment]
//! failure_policy = "rollback"   # rollback | stop: what a failed step does to earlier ones
//! disk_space_factor = 3         # free space needed = payload size × this factor
//! require_file_hashes = false   # refuse payload files the manifest gives no hash for
//! timeout_secs = 0              # whole-deployment limit; 0 = none
//! reserve_mib = 16              # free space an action may not take from the state file system
//! max_interrupted_runs = 5      # crashes an action may meet before it is not run again
//!
//! [hooks]                       # run around every deployment; root-owned, not group/other-writable
//! pre_update = "/etc/handrail/hooks/pre-update"
//! post_update = "/etc/handrail/hooks/post-update"
//! required = false              # true: a missing hook fails the deployment
//! timeout_secs = 120
//!
//! [signing]                     # manifest signatures (see the `trust` module)
//! required = true               # the default: unsigned or unverifiable manifests are refused
//! root_keys = [
//!   { kid = "ADU.200702.R", pem_file = "/etc/handrail/keys/adu-root.pem" },
//!   { kid = "contoso.root.1", jwk = { kty = "OKP", crv = "Ed25519", x = "11qYAYKx…" } },
//!   { kid = "contoso.root.2", jwk_file = "/etc/handrail/keys/root-2.jwk" },
//! ]
//! disabled_root_keys = ["contoso.root.0"]        # root kids no longer trusted
//! disallowed_signing_keys = ["ADU.Signing.2020-04-29", "NzbLsXh8uDCcd-6M…"]  # kid or thumbprint
//! root_key_package = "/etc/handrail/keys/rootkeys.json"  # ADU's root key package
//! root_key_package_allow_test = false           # true: accept one that says isTest
//!
//! [download]                    # payload files fetched from the envelope's fileUrls
//! retries = 8                   # attempts in a row that bring no byte, after the first
//! backoff_initial_ms = 1000     # doubles per retry, with jitter, up to backoff_max_secs
//! backoff_max_secs = 60
//! deadline_secs = 21600         # one file's overall limit; 0 = none
//! connect_timeout_secs = 30
//! read_timeout_secs = 60        # a connection silent this long has failed
//! rate_limit_kib = 0            # bandwidth cap in KiB/s; 0 = none
//! proxy = "http://proxy.lan:3128"   # else HTTPS_PROXY / HTTP_PROXY / ALL_PROXY
//! no_proxy = "localhost,.lan"       # else NO_PROXY
//! ca_file = "/etc/handrail/ca.pem"  # else the bundled Mozilla roots
//! client_cert = "/etc/handrail/device.pem"  # mutual TLS, with client_key
//! client_key = "/etc/handrail/device.key"
//!
//! [ddi]                         # `handrail ddi`: take updates from a hawkBit DDI server
//! server = "https://hawkbit.example.com"   # the server's base URL
//! tenant = "DEFAULT"
//! controller_id = "device-0042"  # default: [device] serial, else the machine id
//! auth = "target-token"          # target-token | gateway-token | none
//! token_file = "/etc/handrail/ddi-token"   # or token = "…"
//! ca_file = "/etc/handrail/ddi-ca.pem"     # else [download] ca_file; client_cert/client_key likewise
//! retry_max_secs = 300           # longest wait between polls while the server is down
//! bare_swu = true                # run a lone .swu artifact as one microsoft/swupdate:2 step
//!
//! [handler_config."microsoft/apt:1"]   # merged over that handler's registration [config]
//! apt_options = ["-o", "Acquire::Retries=3"]
//!
//! [handler_grants."microsoft/swupdate:2"]  # added to that handler's registration [capabilities]
//! write = ["/var/lib/boot"]             # host folders it may read and write
//! read = ["/etc/sw-version.d"]          # host folders it may read
//! run = []                              # programs it may ask the host to run
//! ```
//!
//! Every section and key is optional; an unknown key is an error naming it, so a typo
//! never silently turns a policy off.
//!
//! `root_key_package` is ADU's root key package as its service publishes it (JSON, an
//! absolute path like the key files). Its `rootKeys` are trusted beside `root_keys`, its
//! `disabledRootKeys` and `disabledSigningKeys` join the two lists above. ADU's agent
//! trusts a package its compiled-in root keys signed; here those *anchors* are the
//! configured `root_keys`: each one that is not disabled must be in the package's
//! `rootKeys`, with its signature at the same position in `signatures`. Without an
//! anchor the package is refused (a package that vouches only for itself proves
//! nothing), as is a test package (`isTest`) unless `root_key_package_allow_test` is set.
//! Any fault in the package is an error naming the file and the field.
//!
//! `handler_grants` is how the device owner grants a built-in handler what this device's
//! layout needs (its boot environment, its version file) without registering the handler
//! again: the paths are added to the capabilities of the handler registered under that
//! id when the runtime opens. Every path must be absolute, and the id must be a
//! registered handler's: granting a handler that is not there is refused, naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::{Capabilities, is_valid_handler_id};

/// What a failed step does to the steps before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Restore, in reverse order, every earlier step that backed up.
    #[default]
    Rollback,
    /// Leave earlier steps as they are.
    Stop,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rollback" => Ok(FailurePolicy::Rollback),
            "stop" => Ok(FailurePolicy::Stop),
            other => Err(format!(
                "unknown failure policy `{other}` (expected rollback or stop)"
            )),
        }
    }
}

/// The `[deployment]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentConfig {
    /// What a failed step does to earlier ones.
    pub failure_policy: FailurePolicy,
    /// Free space needed on the state directory's file system, as a multiple of the
    /// deployment's payload size.
    pub disk_space_factor: f64,
    /// Refuse payload files without a size and sha256 in the manifest.
    pub require_file_hashes: bool,
    /// Whole-deployment time limit in seconds (0 = none).
    pub timeout_secs: u64,
    /// MiB the state directory's file system keeps free for the runtime's records while
    /// an action runs: an action that takes the free space under it is stopped.
    pub reserve_mib: u64,
    /// How many times one action of a step may be interrupted by a crash (each resume
    /// runs it again) before it fails instead (`0x34800024`): an update that crashes
    /// the agent every time must not loop forever.
    pub max_interrupted_runs: u32,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        DeploymentConfig {
            failure_policy: FailurePolicy::Rollback,
            disk_space_factor: 3.0,
            require_file_hashes: false,
            timeout_secs: 0,
            reserve_mib: 16,
            max_interrupted_runs: 5,
        }
    }
}

/// The `[hooks]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Run before the first step of a deployment.
    pub pre_update: Option<PathBuf>,
    /// Run after a deployment ends (with its status).
    pub post_update: Option<PathBuf>,
    /// When true, a configured hook that does not exist fails the deployment.
    pub required: bool,
    /// Time limit of one hook run.
    pub timeout_secs: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            pre_update: None,
            post_update: None,
            required: false,
            timeout_secs: 120,
        }
    }
}

/// The `[download]` section: how payload files the payload folder lacks are fetched
/// from the envelope's `fileUrls` (see [`crate::download`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Attempts in a row that bring no byte, after the first, before a download fails.
    pub retries: u32,
    /// The wait before the first retry, in milliseconds; it doubles with each further
    /// one, with jitter.
    pub backoff_initial_ms: u64,
    /// The longest wait between attempts, in seconds (also caps a server's
    /// `Retry-After`).
    pub backoff_max_secs: u64,
    /// One file's overall deadline in seconds, retries included (0 = none).
    pub deadline_secs: u64,
    /// Seconds to connect (name lookup, TCP, TLS).
    pub connect_timeout_secs: u64,
    /// Seconds without a byte before a connection counts as failed.
    pub read_timeout_secs: u64,
    /// Bandwidth cap in KiB/s (0 = none).
    pub rate_limit_kib: u64,
    /// The proxy for every URL (`http://host:port`), instead of `HTTPS_PROXY`,
    /// `HTTP_PROXY` and `ALL_PROXY`.
    pub proxy: Option<String>,
    /// Hosts reached directly, as `NO_PROXY` lists them (comma-separated names, `.suffix`
    /// domains, IP addresses, `*`); instead of `NO_PROXY`.
    pub no_proxy: Option<String>,
    /// PEM file of the certificate authorities HTTPS servers are checked against, instead
    /// of the bundled Mozilla roots; an absolute path.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the device's client certificate (chain), for servers that ask for
    /// one (mutual TLS); an absolute path, with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key; an absolute path.
    pub client_key: Option<PathBuf>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            retries: 8,
            backoff_initial_ms: 1000,
            backoff_max_secs: 60,
            deadline_secs: 6 * 3600,
            connect_timeout_secs: 30,
            read_timeout_secs: 60,
            rate_limit_kib: 0,
            proxy: None,
            no_proxy: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

/// How the DDI client authenticates to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdiAuth {
    /// `Authorization: TargetToken <token>`: the device's own token.
    TargetToken,
    /// `Authorization: GatewayToken <token>`: the tenant's token.
    GatewayToken,
    /// No header (a server that lets devices in by their certificate, or a test server).
    #[default]
    None,
}

/// The `[ddi]` section: the hawkBit DDI server `handrail ddi` takes updates from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdiConfig {
    /// The server's base URL (`https://host[:port][/prefix]`).
    pub server: String,
    /// The tenant (hawkBit's default is `DEFAULT`).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// This device's controller id; default: `[device] serial`, else the machine id.
    #[serde(default)]
    pub controller_id: Option<String>,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: DdiAuth,
    /// The token, inline.
    #[serde(default)]
    pub token: Option<String>,
    /// A root-readable file holding the token (an absolute path); instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM certificate authorities for the server, instead of `[download] ca_file`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The device's client certificate for the server, instead of `[download]`'s.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// The longest wait between polls while the server cannot be reached, in seconds.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// Runs a deployment whose one artifact is a plain SWUpdate image (`.swu`) as one
    /// `microsoft/swupdate:2` step; SWUpdate checks the image's own signature.
    #[serde(default = "default_true")]
    pub bare_swu: bool,
}

fn default_tenant() -> String {
    "DEFAULT".into()
}

fn default_retry_max_secs() -> u64 {
    300
}

fn default_true() -> bool {
    true
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Device properties (strings) matched against manifests' compatibility.
    pub device: BTreeMap<String, String>,
    /// Deployment policy.
    pub deployment: DeploymentConfig,
    /// Pre/post update hooks.
    pub hooks: HooksConfig,
    /// Updating the runtime itself.
    pub self_update: SelfUpdateConfig,
    /// Manifest signatures.
    pub signing: SigningConfig,
    /// Fetching payload files from the envelope's URLs.
    pub download: DownloadConfig,
    /// Taking updates from a hawkBit DDI server (`handrail ddi`).
    pub ddi: Option<DdiConfig>,
    /// Device-local settings per handler id, merged over the registration's `[config]`
    /// (so a bundled handler can be configured without registering it again).
    pub handler_config: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Capabilities per handler id, added to that handler's registration (so a bundled
    /// handler can be granted the device's folders without registering it again).
    pub handler_grants: BTreeMap<String, Capabilities>,
    /// The file this configuration was loaded from ([`Config::load`]); no handler may be
    /// granted it.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The `[signing]` section: which keys a manifest signature must chain to.
///
/// Signing is required unless this says `required = false`: a device that was never
/// told which keys to trust refuses every manifest rather than running any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Refuse manifests that are unsigned, or whose signature cannot be verified.
    pub required: bool,
    /// The root keys a signing key must be signed by.
    pub root_keys: Vec<RootKeyConfig>,
    /// Root key ids no longer trusted (even when listed in `root_keys`).
    pub disabled_root_keys: Vec<String>,
    /// Signing keys refused whatever signed them: a `kid`, an RFC 7638 thumbprint, or
    /// ADU's name for the key, as a string or as ADU's root key package writes it
    /// (`{ alg = "SHA256", hash = "…" }`, see [`DisallowedSigningKey`]).
    pub disallowed_signing_keys: Vec<DisallowedSigningKey>,
    /// ADU's root key package (JSON), an absolute path: its root keys are trusted beside
    /// `root_keys`, its `disabledRootKeys` and `disabledSigningKeys` added to the lists
    /// above. It must be signed, at their positions in its `rootKeys`, by every key in
    /// `root_keys` that is not disabled (its anchors), and at least one is required.
    pub root_key_package: Option<PathBuf>,
    /// Accept a root key package that says `isTest: true` (ADU's production agent
    /// refuses one).
    pub root_key_package_allow_test: bool,
}

/// One entry of `[signing] disallowed_signing_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DisallowedSigningKey {
    /// A `kid`, an RFC 7638 thumbprint, or ADU's key hash (base64url), whichever the
    /// signing key matches.
    Name(String),
    /// ADU's form: the SHA-256 of the key's PKCS#1 `RSAPublicKey` DER, base64url.
    Hash(AduKeyHash),
}

/// A signing key as ADU's `disabledSigningKeys` name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AduKeyHash {
    /// The hash algorithm: `SHA256` (any case), the only one a key can be named by.
    pub alg: String,
    /// The hash, base64url (padding optional).
    pub hash: String,
}

impl<'de> Deserialize<'de> for DisallowedSigningKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = DisallowedSigningKey;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a disallowed_signing_keys entry: a kid, an RFC 7638 thumbprint or ADU's key hash as a string, or { alg = \"SHA256\", hash = \"…\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DisallowedSigningKey::Name(v.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                AduKeyHash::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(DisallowedSigningKey::Hash)
            }
        }
        d.deserialize_any(Entry)
    }
}

impl AduKeyHash {
    /// The 32 hash bytes, or why the entry names no key.
    pub fn digest(&self) -> Result<[u8; 32], String> {
        if !self.alg.eq_ignore_ascii_case("SHA256") {
            return Err(format!(
                "alg `{}`: only SHA256 names a signing key (ADU's agent hashes keys with SHA-256 alone)",
                self.alg
            ));
        }
        use base64::Engine as _;
        let base64url = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        base64url
            .decode(&self.hash)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| format!("hash `{}` is not 32 bytes of base64url", self.hash))
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            required: true,
            root_keys: Vec::new(),
            disabled_root_keys: Vec::new(),
            disallowed_signing_keys: Vec::new(),
            root_key_package: None,
            root_key_package_allow_test: false,
        }
    }
}

/// One root key: its id and exactly one of `jwk`, `jwk_file`, `pem_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeyConfig {
    /// The id a signed signing key's header names (`kid`).
    pub kid: String,
    /// The key as a JWK table (`kty`, `n`/`e`, `crv`/`x`/`y`, …).
    pub jwk: Option<BTreeMap<String, String>>,
    /// A file holding the key as a JWK (JSON); an absolute path.
    pub jwk_file: Option<PathBuf>,
    /// A file holding the key as PEM (`PUBLIC KEY`); an absolute path.
    pub pem_file: Option<PathBuf>,
}

/// The `[self_update]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfUpdateConfig {
    /// The runtime binary to replace (default: the running executable).
    pub binary: Option<PathBuf>,
    /// Run before the new binary is switched in (stop companions, back up data).
    pub pre_hook: Option<PathBuf>,
    /// Run after the switch, with `succeeded` or `rolled-back`.
    pub post_hook: Option<PathBuf>,
    /// Time limit of the new binary's health check, in seconds (default 30).
    pub health_timeout_secs: Option<u64>,
}

/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, naming the key.
    pub message: String,
}

impl Config {
    /// Parses configuration text; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_owned(),
            message,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            err(format!("{at}{}", e.message()))
        })?;
        let factor = config.deployment.disk_space_factor;
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(err(format!(
                "deployment.disk_space_factor: {factor} is not a non-negative number"
            )));
        }
        let key_files = config
            .signing
            .root_keys
            .iter()
            .enumerate()
            .flat_map(|(i, k)| {
                [
                    (format!("signing.root_keys[{i}].jwk_file"), &k.jwk_file),
                    (format!("signing.root_keys[{i}].pem_file"), &k.pem_file),
                ]
            });
        let fixed = [
            ("hooks.pre_update", &config.hooks.pre_update),
            ("hooks.post_update", &config.hooks.post_update),
            ("self_update.binary", &config.self_update.binary),
            ("self_update.pre_hook", &config.self_update.pre_hook),
            ("self_update.post_hook", &config.self_update.post_hook),
            ("signing.root_key_package", &config.signing.root_key_package),
            ("download.ca_file", &config.download.ca_file),
            ("download.client_cert", &config.download.client_cert),
            ("download.client_key", &config.download.client_key),
            ("ddi.token_file", ddi_path(&config, |d| &d.token_file)),
            ("ddi.ca_file", ddi_path(&config, |d| &d.ca_file)),
            ("ddi.client_cert", ddi_path(&config, |d| &d.client_cert)),
            ("ddi.client_key", ddi_path(&config, |d| &d.client_key)),
        ]
        .map(|(key, path)| (key.to_owned(), path));
        for (key, hook) in fixed.into_iter().chain(key_files) {
            if let Some(p) = hook
                && !p.is_absolute()
            {
                return Err(err(format!(
                    "{key}: `{}` is not an absolute path",
                    p.display()
                )));
            }
        }
        if config.download.client_cert.is_some() != config.download.client_key.is_some() {
            return Err(err(
                "download.client_cert and download.client_key: give both or neither".into(),
            ));
        }
        if let Some(ddi) = &config.ddi {
            ddi.check().map_err(err)?;
        }
        for (id, grants) in &config.handler_grants {
            if !is_valid_handler_id(id) {
                return Err(err(format!(
                    "handler_grants.\"{id}\": not a handler id of the form vendor/name:major"
                )));
            }
            for (field, paths) in [
                ("run", &grants.run),
                ("read", &grants.read),
                ("write", &grants.write),
            ] {
                if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
                    return Err(err(format!(
                        "handler_grants.\"{id}\".{field}: `{}` is not an absolute path",
                        p.display()
                    )));
                }
            }
        }
        for (i, entry) in config.signing.disallowed_signing_keys.iter().enumerate() {
            let problem = match entry {
                DisallowedSigningKey::Name(name) if name.trim().is_empty() => {
                    Some("an empty name matches no key".to_owned())
                }
                DisallowedSigningKey::Name(_) => None,
                DisallowedSigningKey::Hash(hash) => hash.digest().err(),
            };
            if let Some(problem) = problem {
                return Err(err(format!(
                    "signing.disallowed_signing_keys[{i}]: {problem}"
                )));
            }
        }
        Ok(config)
    }

    /// Reads a configuration file (a regular file of at most [`MAX_CONFIG_BYTES`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            crate::limits::read_to_string(path, MAX_CONFIG_BYTES).map_err(|e| ConfigError {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let mut config = Config::parse(path, &text)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// The device's properties: the configured ones plus the detected `architecture` and
    /// `os` (configured values win).
    pub fn device_properties(&self) -> BTreeMap<String, String> {
        let mut props = BTreeMap::new();
        props.insert("architecture".to_owned(), std::env::consts::ARCH.to_owned());
        props.insert("os".to_owned(), detect_os());
        props.extend(self.device.clone());
        props
    }

    /// True when the device's identity is configured (a manufacturer or a model), so
    /// compatibility can be checked.
    pub fn has_device_identity(&self) -> bool {
        self.device.contains_key("manufacturer") || self.device.contains_key("model")
    }
}

/// The OS id from `/etc/os-release` (e.g. `debian`), else the platform (`linux`).
/// `[ddi]`'s path at `field`, when there is a `[ddi]`.
fn ddi_path(config: &Config, field: fn(&DdiConfig) -> &Option<PathBuf>) -> &Option<PathBuf> {
    static NONE: Option<PathBuf> = None;
    config.ddi.as_ref().map_or(&NONE, field)
}

impl DdiConfig {
    /// What is wrong with the section, naming the key.
    fn check(&self) -> Result<(), String> {
        let server = self.server.trim_end_matches('/');
        if !(server.starts_with("https://") || server.starts_with("http://"))
            || server
                .split_once("://")
                .is_none_or(|(_, rest)| rest.is_empty())
        {
            return Err(format!(
                "ddi.server: `{}` is not an http:// or https:// URL",
                self.server
            ));
        }
        let plain = |key: &str, value: &str| {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            {
                Err(format!(
                    "ddi.{key}: `{value}` must be letters, digits and - _ . : only"
                ))
            } else {
                Ok(())
            }
        };
        plain("tenant", &self.tenant)?;
        if let Some(id) = &self.controller_id {
            plain("controller_id", id)?;
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err("ddi.token and ddi.token_file: give one, not both".into());
        }
        let has_token = self.token.is_some() || self.token_file.is_some();
        match (self.auth, has_token) {
            (DdiAuth::None, true) => Err(
                "ddi.token: given, but ddi.auth is \"none\" (say target-token or gateway-token)"
                    .into(),
            ),
            (DdiAuth::TargetToken | DdiAuth::GatewayToken, false) => Err(format!(
                "ddi.auth: {} needs ddi.token or ddi.token_file",
                if self.auth == DdiAuth::TargetToken {
                    "target-token"
                } else {
                    "gateway-token"
                }
            )),
            _ if self.client_cert.is_some() != self.client_key.is_some() => {
                Err("ddi.client_cert and ddi.client_key: give both or neither".into())
            }
            _ => Ok(()),
        }
    }

    /// The `[download]` settings with this section's TLS files over them: how the
    /// server's resources and artifacts are reached.
    pub fn transport_config(&self, download: &DownloadConfig) -> DownloadConfig {
        let mut config = download.clone();
        if self.ca_file.is_some() {
            config.ca_file = self.ca_file.clone();
        }
        if self.client_cert.is_some() {
            config.client_cert = self.client_cert.clone();
            config.client_key = self.client_key.clone();
        }
        config
    }
}

fn detect_os() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("ID="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_a_file() {
        let c = Config::parse(Path::new("c.toml"), "").unwrap();
        assert_eq!(c.deployment.failure_policy, FailurePolicy::Rollback);
        assert_eq!(c.deployment.disk_space_factor, 3.0);
        assert!(!c.has_device_identity());
        let props = c.device_properties();
        assert_eq!(props["architecture"], std::env::consts::ARCH);
        assert!(props.contains_key("os"));
    }

    #[test]
    fn device_and_policies_parse() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[device]\nmanufacturer = \"contoso\"\nmodel = \"m\"\narchitecture = \"armv7l\"\n[deployment]\nfailure_policy = \"stop\"\n[hooks]\npre_update = \"/etc/h/pre\"\n",
        )
        .unwrap();
        assert!(c.has_device_identity());
        assert_eq!(c.device_properties()["architecture"], "armv7l");
        assert_eq!(c.deployment.failure_policy, FailurePolicy::Stop);
        assert_eq!(c.hooks.pre_update.as_deref(), Some(Path::new("/etc/h/pre")));
    }

    #[test]
    fn handler_settings_merge_over_the_registration() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[handler_config.\"microsoft/apt:1\"]\napt_options = [\"-o\", \"A=1\"]\n",
        )
        .unwrap();
        let mut registry = crate::registry::Registry::new();
        let reg = crate::registry::Registration::parse(
            Path::new("apt.toml"),
            "id = \"microsoft/apt:1\"\nkind = \"in-process\"\n[config]\nkeep = 1\n",
        )
        .unwrap();
        registry.insert(reg).unwrap();
        for (id, cfg) in &c.handler_config {
            assert!(registry.merge_config(id, cfg));
        }
        assert!(!registry.merge_config("contoso/none:1", &Default::default()));
        let merged = &registry.get("microsoft/apt:1").unwrap().config;
        assert_eq!(merged["apt_options"], serde_json::json!(["-o", "A=1"]));
        assert_eq!(merged["keep"], 1);
    }

    #[test]
    fn handler_grants_parse_per_handler_id() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[handler_grants.\"microsoft/swupdate:2\"]\nwrite = [\"/var/lib/boot\"]\nread = [\"/etc/sw\"]\n",
        )
        .unwrap();
        let grants = &c.handler_grants["microsoft/swupdate:2"];
        assert_eq!(grants.write, [PathBuf::from("/var/lib/boot")]);
        assert_eq!(grants.read, [PathBuf::from("/etc/sw")]);
        assert!(grants.run.is_empty());
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, want) in [
            ("[deployment]\nfailure_policy = \"retry\"", "retry"),
            ("[deployment]\nfailur_policy = \"stop\"", "failur_policy"),
            (
                "[hooks]\npre_update = \"relative/hook\"",
                "hooks.pre_update",
            ),
            (
                "[deployment]\ndisk_space_factor = -1.0",
                "disk_space_factor",
            ),
            ("[device]\nmodel = 3", "line 2"),
            (
                "[handler_grants.\"microsoft/swupdate:2\"]\nwrite = [\"var/lib/boot\"]",
                "handler_grants.\"microsoft/swupdate:2\".write: `var/lib/boot` is not an absolute path",
            ),
            (
                "[handler_grants.\"microsoft/swupdate:2\"]\nexecute = [\"/bin/sh\"]",
                "unknown field `execute`",
            ),
            (
                "[handler_grants.swupdate]\nread = [\"/etc\"]",
                "handler_grants.\"swupdate\": not a handler id",
            ),
        ] {
            let e = Config::parse(Path::new("c.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains("c.toml") && e.contains(want), "{e} lacks {want}");
        }
    }
}
