//! Compiled components, kept on disk so a warm load deserialises machine code instead of
//! running Cranelift.
//!
//! A cache entry is keyed by the artifact's sha256 and by the engine's compatibility hash
//! ([`Engine::precompile_compatibility_hash`]: wasmtime version, target, settings), so an
//! upgrade or a configuration change misses instead of loading incompatible code. Entries
//! are written atomically (temporary file, fsync, rename). Components already loaded by
//! this host are also kept in memory.
//!
//! Deserialising trusts the cache folder: it must be writable only by the runtime.

use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How often the cache was hit and missed since the host was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads served from components this host already had in memory.
    pub memory_hits: u64,
    /// Loads served by deserialising a cache file.
    pub disk_hits: u64,
    /// Loads that compiled the component (and wrote a cache file).
    pub compiles: u64,
}

/// The compiled-component cache of one engine.
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    loaded: Mutex<HashMap<String, Component>>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    compiles: AtomicU64,
}

/// Feeds a `Hash` value into sha256, so the key is stable across processes (unlike
/// `DefaultHasher`, whose output is not specified).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    /// A cache in `dir` (created when missing) for components of `engine`.
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = handrail::registry::hex(&hasher.0.finalize()[..8]);
        Ok(ComponentCache {
            dir,
            engine_key,
            loaded: Mutex::default(),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
        })
    }

    /// The cache file of an artifact with this sha256.
    pub(crate) fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
        }
    }

    /// The component of `artifact`, whose sha256 the registry has verified to be
    /// `sha256`: from memory, from the cache file, or compiled (and cached).
    pub(crate) fn load(
        &self,
        engine: &Engine,
        artifact: &Path,
        sha256: &str,
    ) -> Result<Component, String> {
        if let Some(component) = self.lock().get(sha256) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component.clone());
        }
        let entry = self.entry_path(sha256);
        let component = match self.deserialize(engine, &entry) {
            Some(component) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                let component = self.compile(engine, artifact, sha256)?;
                self.compiles.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.store(&component, &entry) {
                    // A cache that cannot be written costs a compile next time, nothing more.
                    tracing::warn!(cache = %entry.display(), "cannot write the compiled-handler cache: {e}");
                }
                component
            }
        };
        self.lock().insert(sha256.to_owned(), component.clone());
        Ok(component)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Component>> {
        match self.loaded.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn deserialize(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        if !entry.is_file() {
            return None;
        }
        // SAFETY: the file was written by `store` below from a component this engine
        // configuration compiled (the engine key is part of its name), in a folder only
        // the runtime writes to. wasmtime still checks the header and rejects files of
        // another version or configuration, which we treat as a miss.
        match unsafe { Component::deserialize_file(engine, entry) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(cache = %entry.display(), "ignoring an unusable compiled-handler cache entry: {e}");
                None
            }
        }
    }

    fn compile(&self, engine: &Engine, artifact: &Path, sha256: &str) -> Result<Component, String> {
        let bytes = fs::read(artifact).map_err(|e| format!("cannot read the artifact: {e}"))?;
        let actual = handrail::registry::hex(&Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(format!(
                "the artifact's sha256 is {actual}, not the registered {sha256}; it changed after it was verified"
            ));
        }
        Component::new(engine, &bytes)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))
    }

    fn store(&self, component: &Component, entry: &Path) -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(entry).map_err(|e| e.error)?;
        Ok(())
    }
}
