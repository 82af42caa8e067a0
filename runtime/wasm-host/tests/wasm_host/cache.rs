//! The compiled-artifact cache and load-time checks.

use std::fs;

use handrail::host::HandlerHost;
use handrail::registry::HandlerKind;
use handrail_test_guest_artifacts::{FUTURE_CONTRACT, HOSTILE};
use handrail_wasm_host::{CacheStats, WasmHost};

use crate::support::{HOSTILE_ID, PLAIN, Scratch, limits};

#[tokio::test]
async fn a_cold_load_compiles_once_and_a_warm_load_does_not_compile() {
    let scratch = Scratch::new();
    let cache = scratch.path("cache");
    let registration = scratch.hostile(&PLAIN);

    let cold = WasmHost::new(cache.clone()).unwrap();
    cold.load(&registration).await.unwrap();
    assert_eq!(
        cold.cache_stats(),
        CacheStats {
            compiles: 1,
            ..CacheStats::default()
        }
    );
    let entry = cold.cache_entry(&registration.sha256);
    assert!(entry.is_file(), "{} was written", entry.display());
    let written = fs::metadata(&entry).unwrap().modified().unwrap();
    cold.load(&registration).await.unwrap();
    assert_eq!(cold.cache_stats().memory_hits, 1);

    // A new host (a restarted agent) deserialises the cached code.
    let warm = WasmHost::new(cache.clone()).unwrap();
    let handler = warm.load(&registration).await.unwrap();
    assert_eq!(handler.description().id, HOSTILE_ID);
    assert_eq!(
        warm.cache_stats(),
        CacheStats {
            disk_hits: 1,
            ..CacheStats::default()
        }
    );
    assert_eq!(fs::metadata(&entry).unwrap().modified().unwrap(), written);
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1, "no stray files");
}

#[tokio::test]
async fn a_damaged_cache_entry_is_recompiled() {
    let scratch = Scratch::new();
    let cache = scratch.path("cache");
    let registration = scratch.hostile(&PLAIN);
    let host = WasmHost::new(cache.clone()).unwrap();
    fs::write(host.cache_entry(&registration.sha256), b"not machine code").unwrap();
    host.load(&registration).await.unwrap();
    assert_eq!(host.cache_stats().compiles, 1);
    let again = WasmHost::new(cache).unwrap();
    again.load(&registration).await.unwrap();
    assert_eq!(again.cache_stats().disk_hits, 1);
}

#[tokio::test]
async fn a_flipped_byte_anywhere_in_a_cache_entry_is_compiled_again_never_executed() {
    let scratch = Scratch::new();
    let cache = scratch.path("cache");
    let registration = scratch.hostile(&PLAIN);
    let host = WasmHost::new(cache.clone()).unwrap();
    host.load(&registration).await.unwrap();
    let entry = host.cache_entry(&registration.sha256);
    let good = fs::read(&entry).unwrap();
    // In its digest, in wasmtime's header, in the code (the unit tests of the cache
    // flip a hundred more offsets without compiling again each time).
    let len = good.len();
    let offsets = [5, 40, len / 2];
    for offset in offsets {
        let mut bad = good.clone();
        bad[offset] ^= 0x5a;
        fs::write(&entry, &bad).unwrap();
        // A new host (a restarted agent) must not run the damaged code.
        let fresh = WasmHost::new(cache.clone()).unwrap();
        let handler = fresh.load(&registration).await.unwrap();
        assert_eq!(handler.description().id, HOSTILE_ID);
        assert_eq!(
            fresh.cache_stats(),
            CacheStats {
                compiles: 1,
                ..CacheStats::default()
            },
            "offset {offset} of {len}"
        );
        // The entry was written again, whole.
        assert_eq!(fs::read(&entry).unwrap(), good, "offset {offset}");
    }
}

#[tokio::test]
async fn bad_artifacts_are_refused_with_the_reason() {
    let scratch = Scratch::new();
    let host = WasmHost::new(scratch.path("cache")).unwrap();

    let not_wasm = scratch.registration("test/junk:1", b"\0asm junk", &[], limits(64, 10));
    let err = host.load(&not_wasm).await.err().unwrap().to_string();
    assert!(
        err.contains("test/junk:1") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );

    let mut changed = scratch.hostile(&PLAIN);
    fs::write(&changed.artifact, b"swapped after verification").unwrap();
    changed.sha256 = changed.sha256.replace(|c: char| c.is_ascii_digit(), "0");
    let err = host.load(&changed).await.err().unwrap().to_string();
    assert!(err.contains("sha256"), "{err}");

    let mut native = scratch.hostile(&PLAIN);
    native.kind = HandlerKind::Native;
    let err = host.load(&native).await.err().unwrap().to_string();
    assert!(err.contains("`native` handler"), "{err}");

    let renamed = scratch.registration("test/renamed:1", HOSTILE, &[], limits(64, 10));
    let err = host.load(&renamed).await.err().unwrap().to_string();
    assert!(
        err.contains("describes itself as `test/hostile:1`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_handler_for_another_contract_major_is_refused() {
    let scratch = Scratch::new();
    let host = WasmHost::new(scratch.path("cache")).unwrap();
    let future = scratch.registration("test/future:2", FUTURE_CONTRACT, &[], limits(64, 10));
    let err = host.load(&future).await.err().unwrap().to_string();
    assert!(
        err.contains("test/future:2") && err.contains("handler contract 2.0"),
        "{err}"
    );
}
