//! Precompiled components (`handrail precompile`): made by [`Precompiler`], loaded and run
//! by a host without compiling, refused with the advice when another engine made them,
//! and the precompiler's own errors naming the file.

use std::fs;

use handrail::CancelToken;
use handrail::host::{HandlerHost, InvocationEnd};
use handrail_contract::{Action, codes};
use handrail_test_guest_artifacts::HOSTILE;
use handrail_wasm_host::{CacheStats, PrecompileError, Precompiler, WasmHost, check_artifact};
use serde_json::json;

use crate::support::{HOSTILE_ID, PLAIN, Scratch, invoke, limits};

#[tokio::test]
async fn a_precompiled_component_loads_without_compiling_and_runs() {
    let scratch = Scratch::new();
    let wasm = scratch.path("hostile.wasm");
    let cwasm = scratch.path("hostile.cwasm");
    fs::write(&wasm, HOSTILE).unwrap();
    let sha256 = Precompiler::new()
        .unwrap()
        .precompile_file(&wasm, &cwasm)
        .unwrap();
    let registration =
        scratch.registration(HOSTILE_ID, &fs::read(&cwasm).unwrap(), &[], limits(64, 10));
    assert_eq!(registration.sha256, sha256, "the sha256 to register");
    check_artifact(&registration).unwrap();

    let cache = scratch.path("cache");
    let host = WasmHost::new(cache.clone()).unwrap();
    let handler = host.load(&registration).await.unwrap();
    assert_eq!(handler.description().id, HOSTILE_ID);
    assert_eq!(
        host.cache_stats(),
        CacheStats {
            precompiled: 1,
            ..CacheStats::default()
        }
    );
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 0, "nothing to cache");

    let files = vec![scratch.payload("a.txt", "payload a")];
    let context = scratch.context(HOSTILE_ID, json!({"behaviour": "ok"}), files, None);
    let (end, _) = invoke(&handler, Action::Install, context, CancelToken::new()).await;
    assert!(matches!(end, InvocationEnd::Returned), "{end:?}");
    let result = scratch.result(Action::Install);
    assert_eq!(result.result_code, codes::INSTALL_SUCCESS, "{result:?}");
    assert_eq!(result.result_details, "behaved");
}

#[tokio::test]
async fn a_component_precompiled_for_another_engine_is_refused_with_the_advice() {
    let scratch = Scratch::new();
    // The host's engine interrupts guests by epoch; one that does not is another engine.
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let other = wasmtime::Engine::new(&config).unwrap();
    let foreign = other.precompile_component(HOSTILE).unwrap();
    let registration = scratch.registration(HOSTILE_ID, &foreign, &[], limits(64, 10));

    let host = WasmHost::new(scratch.path("cache")).unwrap();
    let err = host.load(&registration).await.err().unwrap().to_string();
    assert!(
        err.contains(HOSTILE_ID)
            && err.contains("hostile")
            && err.contains("precompiled for another engine")
            && err.contains("re-run `handrail precompile`"),
        "{err}"
    );
    let err = check_artifact(&registration).unwrap_err().to_string();
    assert!(err.contains("precompiled for another engine"), "{err}");
    // A plain component is fine for a build that can compile it.
    check_artifact(&scratch.hostile(&PLAIN)).unwrap();
}

#[test]
fn the_precompiler_names_the_file_at_fault() {
    let scratch = Scratch::new();
    let precompiler = Precompiler::new().unwrap();

    let missing = scratch.path("missing.wasm");
    let err = precompiler
        .precompile_file(&missing, &scratch.path("out.cwasm"))
        .unwrap_err();
    assert!(matches!(err, PrecompileError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.wasm"), "{err}");

    let junk = scratch.path("junk.wasm");
    fs::write(&junk, b"\0asm junk").unwrap();
    let err = precompiler
        .precompile_file(&junk, &scratch.path("out.cwasm"))
        .unwrap_err();
    assert!(
        matches!(err, PrecompileError::NotAComponent { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("junk.wasm"), "{err}");

    let wasm = scratch.path("hostile.wasm");
    fs::write(&wasm, HOSTILE).unwrap();
    let unwritable = scratch.path("no-such-folder/out.cwasm");
    let err = precompiler.precompile_file(&wasm, &unwritable).unwrap_err();
    assert!(matches!(err, PrecompileError::Write { .. }), "{err}");
    assert!(
        err.to_string().contains("no-such-folder/out.cwasm"),
        "{err}"
    );

    let cwasm = scratch.path("hostile.cwasm");
    precompiler.precompile_file(&wasm, &cwasm).unwrap();
    let err = precompiler
        .precompile_file(&cwasm, &scratch.path("again.cwasm"))
        .unwrap_err();
    assert!(
        matches!(err, PrecompileError::AlreadyPrecompiled { .. }),
        "{err}"
    );
    assert!(
        !scratch.path("out.cwasm").exists() && !scratch.path("again.cwasm").exists(),
        "nothing written on a failure"
    );
    let leftovers: Vec<_> = fs::read_dir(scratch.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
}
