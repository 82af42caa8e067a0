//! Where a loaded component comes from: memory, the compiled-component cache on disk, a
//! precompiled artifact, or Cranelift.
//!
//! Components already loaded by this host are kept in memory. A precompiled artifact
//! (`handrail precompile`) is deserialised as it is; see the `precompiled` module. A
//! `.wasm` component is compiled once and kept on disk, so a warm load deserialises
//! machine code instead of running Cranelift: a cache entry is keyed by the artifact's
//! sha256 and by the engine's compatibility hash
//! ([`Engine::precompile_compatibility_hash`]: wasmtime version, target, settings), so an
//! upgrade or a configuration change misses instead of loading incompatible code. Entries
//! are written atomically (temporary file, fsync, rename), and each begins with the
//! CRC-32 and length of the machine code after it: an entry is checked against them
//! before wasmtime sees a byte, so a damaged entry (flipped bits on the disk, a torn
//! write) is compiled again — with a warning naming the file — instead of being mapped
//! and executed. A checksum, not a cryptographic hash: it finds damage, not a forger, and
//! deserialising an entry still trusts the cache folder (it must be writable only by the
//! runtime); CRC-32 is several times cheaper than sha256 on every warm load.
//!
//! Without the `compiler` feature there is nothing to compile, hence no disk cache: a
//! `.wasm` component is refused and precompiled artifacts load directly.

use std::collections::HashMap;
#[cfg(feature = "compiler")]
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "compiler")]
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::precompiled::{self, ArtifactForm};

/// How often the cache was hit and missed since the host was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads served from components this host already had in memory.
    pub memory_hits: u64,
    /// Loads served by deserialising a cache file.
    pub disk_hits: u64,
    /// Loads that compiled the component (and wrote a cache file).
    pub compiles: u64,
    /// Loads of precompiled artifacts (`handrail precompile`), deserialised as they are.
    pub precompiled: u64,
}

/// The component cache of one engine.
pub(crate) struct ComponentCache {
    #[cfg(feature = "compiler")]
    disk: DiskCache,
    loaded: Mutex<HashMap<String, Component>>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    compiles: AtomicU64,
    precompiled: AtomicU64,
}

impl ComponentCache {
    /// A cache in `dir` (created when missing; not used without the compiler) for
    /// components of `engine`.
    pub(crate) fn new(engine: &Engine, dir: PathBuf) -> std::io::Result<Self> {
        #[cfg(not(feature = "compiler"))]
        let _ = (engine, dir);
        Ok(ComponentCache {
            #[cfg(feature = "compiler")]
            disk: DiskCache::new(engine, dir)?,
            loaded: Mutex::default(),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
            precompiled: AtomicU64::new(0),
        })
    }

    /// The cache file of an artifact with this sha256.
    #[cfg(feature = "compiler")]
    pub(crate) fn entry_path(&self, sha256: &str) -> PathBuf {
        self.disk.entry_path(sha256)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            precompiled: self.precompiled.load(Ordering::Relaxed),
        }
    }

    /// The component of `artifact`, whose sha256 the registry has verified to be
    /// `sha256`: from memory, from the cache file, deserialised when precompiled, or
    /// compiled (and cached).
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
        let component = self.load_uncached(engine, artifact, sha256)?;
        self.lock().insert(sha256.to_owned(), component.clone());
        Ok(component)
    }

    fn load_uncached(
        &self,
        engine: &Engine,
        artifact: &Path,
        sha256: &str,
    ) -> Result<Component, String> {
        #[cfg(feature = "compiler")]
        if let Some(component) = self.disk.read(engine, sha256) {
            self.disk_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        let bytes = precompiled::read_verified(artifact, sha256)?;
        match precompiled::form(&bytes)? {
            ArtifactForm::Precompiled => {
                let component = precompiled::deserialize(engine, &bytes)?;
                self.precompiled.fetch_add(1, Ordering::Relaxed);
                Ok(component)
            }
            ArtifactForm::Component => self.compile(engine, &bytes, sha256),
        }
    }

    #[cfg(feature = "compiler")]
    fn compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> Result<Component, String> {
        let component = Component::new(engine, bytes)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.disk.write(&component, sha256) {
            // A cache that cannot be written costs a compile next time, nothing more.
            tracing::warn!(cache = %self.entry_path(sha256).display(), "cannot write the compiled-handler cache: {e}");
        }
        Ok(component)
    }

    #[cfg(not(feature = "compiler"))]
    fn compile(&self, _: &Engine, _: &[u8], _: &str) -> Result<Component, String> {
        Err(precompiled::NOT_PRECOMPILED.to_owned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Component>> {
        match self.loaded.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The length of what begins a cache entry: the CRC-32 of the code after it, then the
/// code's length (both little-endian).
#[cfg(feature = "compiler")]
const DIGEST_BYTES: usize = 12;

/// What begins the cache entry of `code`.
#[cfg(feature = "compiler")]
fn digest(code: &[u8]) -> [u8; DIGEST_BYTES] {
    let mut head = [0u8; DIGEST_BYTES];
    head[..4].copy_from_slice(&crc32fast::hash(code).to_le_bytes());
    head[4..].copy_from_slice(&(code.len() as u64).to_le_bytes());
    head
}

/// The compiled components on disk, one file per artifact and engine configuration.
#[cfg(feature = "compiler")]
struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds a `Hash` value into sha256, so the key is stable across processes (unlike
/// `DefaultHasher`, whose output is not specified).
#[cfg(feature = "compiler")]
struct Sha256Hasher(Sha256);

#[cfg(feature = "compiler")]
impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(feature = "compiler")]
impl DiskCache {
    fn new(engine: &Engine, dir: PathBuf) -> std::io::Result<Self> {
        use std::hash::Hash;
        fs::create_dir_all(&dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = handrail::registry::hex(&hasher.0.finalize()[..8]);
        Ok(DiskCache { dir, engine_key })
    }

    fn entry_path(&self, sha256: &str) -> PathBuf {
        // `v2`: entries that begin with the checksum of their code.
        self.dir
            .join(format!("{sha256}-{}.v2.cwasm", self.engine_key))
    }

    fn read(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let entry = self.entry_path(sha256);
        if !entry.is_file() {
            return None;
        }
        let unusable = |why: String| {
            tracing::warn!(cache = %entry.display(), "ignoring a damaged compiled-handler cache entry ({why}); compiling the handler again");
            None
        };
        let bytes = match fs::read(&entry) {
            Ok(bytes) => bytes,
            Err(e) => return unusable(e.to_string()),
        };
        let Some((head, code)) = bytes.split_at_checked(DIGEST_BYTES) else {
            return unusable("shorter than its checksum".into());
        };
        if digest(code) != *head {
            return unusable("its machine code does not match its checksum".into());
        }
        // SAFETY: the code is, byte for byte, what `write` below serialised from a
        // component this engine configuration compiled (the engine key is part of the
        // name), in a folder only the runtime writes to. wasmtime still checks the header
        // and rejects code of another version or configuration, which we treat as a miss.
        match unsafe { Component::deserialize(engine, code) } {
            Ok(component) => Some(component),
            Err(e) => unusable(e.to_string()),
        }
    }

    fn write(&self, component: &Component, sha256: &str) -> std::io::Result<()> {
        use std::io::Write;
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&digest(&bytes))?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(self.entry_path(sha256)).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of a hundred one-byte flips across an entry is found before wasmtime
    /// sees the code.
    #[cfg(feature = "compiler")]
    #[test]
    fn a_flipped_byte_anywhere_in_an_entry_is_found_before_it_is_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(&crate::engine_config()).unwrap();
        let disk = DiskCache::new(&engine, dir.path().to_owned()).unwrap();
        let component = Component::new(&engine, handrail_test_guest_artifacts::HOSTILE).unwrap();
        disk.write(&component, "hostile").unwrap();
        assert!(
            disk.read(&engine, "hostile").is_some(),
            "a good entry loads"
        );
        let entry = disk.entry_path("hostile");
        let good = fs::read(&entry).unwrap();
        let len = good.len();
        for offset in (0..40)
            .chain((1..60).map(|i| i * len / 60))
            .chain([len - 1])
        {
            let mut bad = good.clone();
            bad[offset] ^= 0x01;
            fs::write(&entry, &bad).unwrap();
            assert!(
                disk.read(&engine, "hostile").is_none(),
                "offset {offset} of {len}"
            );
        }
        fs::write(&entry, &good[..DIGEST_BYTES - 1]).unwrap();
        assert!(disk.read(&engine, "hostile").is_none(), "a torn entry");
    }

    /// The same test in both builds: a `.wasm` component is compiled with the compiler
    /// and refused, with the advice, without it.
    #[test]
    fn a_component_is_compiled_or_refused_as_the_build_allows() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("hostile.wasm");
        fs::write(&artifact, handrail_test_guest_artifacts::HOSTILE).unwrap();
        let sha256 = handrail::registry::sha256_file(&artifact).unwrap();
        let engine = Engine::new(&crate::engine_config()).unwrap();
        let cache = ComponentCache::new(&engine, dir.path().join("cache")).unwrap();
        let loaded = cache.load(&engine, &artifact, &sha256);
        if cfg!(feature = "compiler") {
            assert!(loaded.is_ok(), "{:?}", loaded.err());
            assert_eq!(cache.stats().compiles, 1);
        } else {
            assert_eq!(loaded.err().as_deref(), Some(precompiled::NOT_PRECOMPILED));
            assert!(!dir.path().join("cache").exists(), "nothing cached");
        }
    }
}
