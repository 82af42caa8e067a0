//! Bounded reads of files that come from outside (configuration, registrations, keys,
//! child manifests): only regular files, never more than a stated number of bytes.
//!
//! Every input Handrail takes has a bound, so a hostile or broken one costs a clear error
//! rather than memory or a hang:
//!
//! | input | bound |
//! |---|---|
//! | update manifest / envelope | [`manifest::MAX_MANIFEST_BYTES`](crate::manifest::MAX_MANIFEST_BYTES) / [`MAX_DOCUMENT_BYTES`](crate::manifest::MAX_DOCUMENT_BYTES), plus steps, files, string lengths, nesting, `fileUrls` |
//! | child manifest | [`manifest::MAX_MANIFEST_BYTES`](crate::manifest::MAX_MANIFEST_BYTES) |
//! | manifest signature | [`trust::MAX_JWS_BYTES`](crate::trust::MAX_JWS_BYTES) |
//! | configuration file | [`config::MAX_CONFIG_BYTES`](crate::config::MAX_CONFIG_BYTES) |
//! | registration file | [`registry::MAX_REGISTRATION_BYTES`](crate::registry::MAX_REGISTRATION_BYTES) |
//! | key file | [`trust::MAX_KEY_FILE_BYTES`](crate::trust::MAX_KEY_FILE_BYTES) |
//! | result file | [`contract::MAX_RESULT_FILE_BYTES`](crate::contract::MAX_RESULT_FILE_BYTES) |
//! | payload file | its `sizeInBytes` and sha256, checked while staging |
//! | quarantined payloads | [`admit::MAX_QUARANTINED`](crate::admit::MAX_QUARANTINED) deployments |

use std::io::{self, Read};
use std::path::Path;

/// Reads the regular file `path`, refusing one larger than `limit` bytes and anything
/// that is not a regular file (a FIFO or a device is refused without waiting on it).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so that opening a FIFO nobody writes does not wait; a regular file
    // reads the same either way.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let too_large = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes; the limit is {limit}"),
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    // The file may grow after the size check: read one byte past the limit to tell.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_device_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        for path in [fifo.as_path(), Path::new("/dev/zero")] {
            let e = read(path, 1024).unwrap_err();
            assert_eq!(e.to_string(), "not a regular file", "{}", path.display());
        }
    }

    #[test]
    fn large_files_and_non_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read(&path, 5).unwrap(), b"12345");
        let e = read(&path, 4).unwrap_err().to_string();
        assert_eq!(e, "5 bytes; the limit is 4");
        assert!(read(dir.path(), 100).is_err());
        assert!(read(Path::new("/dev/zero"), 100).is_err());
    }
}
