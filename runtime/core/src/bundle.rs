//! Handrail bundles: one file that carries an update manifest (signed, as delivered) and
//! its payload files, for update servers that take one artifact per update.
//!
//! A bundle is an SWUpdate-compatible image: a cpio archive in the `newc` format with
//! checksums (`070702`, as SWUpdate writes its `.swu` images) whose first member is an
//! `sw-description`, so servers that accept only `.swu` uploads (goosebit) take it and
//! read its version. The members:
//!
//! 1. `sw-description`: libconfig text, `software = { version = "…"; description = "…";
//!    handrail = { manifest = "handrail-manifest.json"; }; };` (plus
//!    `hardware-compatibility` when the bundle names any);
//! 2. `handrail-manifest.json`: the update manifest or envelope, byte for byte;
//! 3. the payload files, each under its own file name, in name order.
//!
//! Reading one ([`Bundle::open`]) checks the archive's structure, every member's
//! checksum, and that member names are plain file names (no folders, no `..`, no
//! duplicates); the manifest's signature and the files' sizes and sha256s are checked
//! by admission, as for any deployment, before anything runs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The member that holds the manifest.
pub const MANIFEST_MEMBER: &str = "handrail-manifest.json";

/// The member SWUpdate and servers read first.
pub const SW_DESCRIPTION: &str = "sw-description";

/// Most members one bundle may hold.
pub const MAX_MEMBERS: usize = 4096;

const MAGIC_CRC: &[u8; 6] = b"070702";
const MAGIC_PLAIN: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

/// Why a bundle cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The archive is not a well-formed bundle.
    #[error("{path}: not a valid bundle: {message}")]
    Invalid {
        /// The bundle.
        path: PathBuf,
        /// What is wrong, naming the member.
        message: String,
    },
}

/// One member of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its file name.
    pub name: String,
    /// Where its data starts in the archive.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// An SWUpdate-style cpio archive, read: a Handrail bundle when it holds
/// [`MANIFEST_MEMBER`], else a plain SWUpdate image.
#[derive(Debug, Clone)]
pub struct Bundle {
    path: PathBuf,
    members: Vec<Member>,
}

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct BundleSpec<'a> {
    /// `software.version` of the `sw-description`.
    pub version: &'a str,
    /// Its `description`.
    pub description: &'a str,
    /// `hardware-compatibility` entries (board revisions); empty for none.
    pub hardware_compatibility: &'a [String],
    /// The manifest or envelope, as delivered.
    pub manifest: &'a [u8],
    /// The payload files: name and where it is read from.
    pub files: &'a [(String, PathBuf)],
}

impl Bundle {
    /// Writes a bundle to `out` (through a temporary file beside it, renamed into place
    /// once complete and synced).
    pub fn write(out: &Path, spec: &BundleSpec<'_>) -> Result<u64, BundleError> {
        let io = |path: &Path, source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        let invalid = |message: String| BundleError::Invalid {
            path: out.to_owned(),
            message,
        };
        for text in [spec.version, spec.description]
            .into_iter()
            .chain(spec.hardware_compatibility.iter().map(String::as_str))
        {
            if text.contains(['"', '\\', '\n']) {
                return Err(invalid(format!(
                    "`{text}`: quotes, backslashes and line breaks cannot go into sw-description"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, _) in spec.files {
            check_name(name).map_err(|m| invalid(format!("payload file `{name}`: {m}")))?;
            if name == SW_DESCRIPTION || name == MANIFEST_MEMBER || !names.insert(name.as_str()) {
                return Err(invalid(format!(
                    "payload file `{name}`: the name is taken (twice, or by the bundle's own members)"
                )));
            }
        }
        let mut description = format!(
            "software =\n{{\n\tversion = \"{}\";\n\tdescription = \"{}\";\n",
            spec.version, spec.description
        );
        if !spec.hardware_compatibility.is_empty() {
            let list: Vec<String> = spec
                .hardware_compatibility
                .iter()
                .map(|h| format!("\"{h}\""))
                .collect();
            description.push_str(&format!(
                "\thardware-compatibility: [ {} ];\n",
                list.join(", ")
            ));
        }
        description.push_str(&format!(
            "\thandrail = {{ manifest = \"{MANIFEST_MEMBER}\"; }};\n}};\n"
        ));
        let tmp = out.with_extension("partial");
        let file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = CpioWriter {
            out: BufWriter::new(file),
            written: 0,
            ino: 0,
        };
        let result = (|| -> std::io::Result<u64> {
            w.member(SW_DESCRIPTION, Data::Bytes(description.as_bytes()))?;
            w.member(MANIFEST_MEMBER, Data::Bytes(spec.manifest))?;
            let mut files: Vec<&(String, PathBuf)> = spec.files.iter().collect();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, path) in files {
                w.member(name, Data::File(path))?;
            }
            w.member(TRAILER, Data::Bytes(&[]))?;
            let written = w.written;
            let file = w.out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(written)
        })();
        let written = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(out, e));
            }
        };
        crate::durable::rename(&tmp, out).map_err(|e| io(out, e))?;
        Ok(written)
    }

    /// Reads the archive at `path`: its members, each checksum verified.
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        let io = |source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        let invalid = |message: String| BundleError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = BufReader::new(file);
        let mut members = Vec::new();
        let mut at = 0u64;
        loop {
            let mut header = [0u8; HEADER_LEN];
            r.read_exact(&mut header).map_err(|e| {
                invalid(format!(
                    "the archive ends inside a member header at byte {at}: {e}"
                ))
            })?;
            let crc = match &header[..6] {
                m if m == MAGIC_CRC => true,
                m if m == MAGIC_PLAIN => false,
                _ => {
                    return Err(invalid(format!(
                        "no cpio newc header at byte {at} (an SWUpdate image is a cpio archive in the newc format)"
                    )));
                }
            };
            let field = |i: usize| -> Result<u64, BundleError> {
                let text = std::str::from_utf8(&header[6 + i * 8..14 + i * 8]).unwrap_or("");
                u64::from_str_radix(text, 16)
                    .map_err(|_| invalid(format!("a damaged header at byte {at}")))
            };
            let mode = field(1)?;
            let size = field(6)?;
            let name_len = field(11)? as usize;
            let check = field(12)?;
            if name_len == 0 || name_len > 4096 {
                return Err(invalid(format!("a damaged header at byte {at}")));
            }
            let mut name = vec![0u8; pad4(HEADER_LEN + name_len) - HEADER_LEN];
            r.read_exact(&mut name).map_err(|e| {
                invalid(format!("the archive ends inside a name at byte {at}: {e}"))
            })?;
            name.truncate(name_len - 1);
            let name = String::from_utf8(name)
                .map_err(|_| invalid(format!("a member name at byte {at} is not UTF-8")))?;
            let offset = at + pad4(HEADER_LEN + name_len) as u64;
            if name == TRAILER {
                break;
            }
            if offset + size > len {
                return Err(invalid(format!(
                    "member `{name}` says {size} bytes, past the archive's end"
                )));
            }
            check_name(&name).map_err(|m| invalid(format!("member `{name}`: {m}")))?;
            if mode & 0o170000 != 0o100000 {
                return Err(invalid(format!("member `{name}` is not a regular file")));
            }
            if members.iter().any(|m: &Member| m.name == name) {
                return Err(invalid(format!("member `{name}` appears twice")));
            }
            if members.len() >= MAX_MEMBERS {
                return Err(invalid(format!("more than {MAX_MEMBERS} members")));
            }
            let mut sum = 0u32;
            let mut left = size;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..n]).map_err(io)?;
                if crc {
                    sum = buf[..n]
                        .iter()
                        .fold(sum, |s, b| s.wrapping_add(u32::from(*b)));
                }
                left -= n as u64;
            }
            if crc && u64::from(sum) != check {
                return Err(invalid(format!(
                    "member `{name}` is damaged: its checksum is {sum:08x}, the header says {check:08x}"
                )));
            }
            let padded = pad4(size as usize) as u64;
            r.seek_relative((padded - size) as i64).map_err(io)?;
            members.push(Member { name, offset, size });
            at = offset + padded;
        }
        if members.first().is_none_or(|m| m.name != SW_DESCRIPTION) {
            return Err(invalid(format!(
                "its first member is not `{SW_DESCRIPTION}`"
            )));
        }
        Ok(Bundle {
            path: path.to_owned(),
            members,
        })
    }

    /// Its members, `sw-description` first.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// True when this is a Handrail bundle (it holds [`MANIFEST_MEMBER`]); false for a
    /// plain SWUpdate image.
    pub fn is_handrail_bundle(&self) -> bool {
        self.member(MANIFEST_MEMBER).is_some()
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The bytes of `member` (at most `limit` of them).
    pub fn read(&self, member: &Member, limit: u64) -> Result<Vec<u8>, BundleError> {
        if member.size > limit {
            return Err(BundleError::Invalid {
                path: self.path.clone(),
                message: format!("member `{}` is over {limit} bytes", member.name),
            });
        }
        let mut file = File::open(&self.path).map_err(|source| BundleError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut bytes = vec![0u8; member.size as usize];
        file.seek(SeekFrom::Start(member.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|source| BundleError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }

    /// Writes every member but `sw-description` and the manifest into `dir` (made if
    /// missing), each synced; returns the paths written.
    pub fn extract_payloads(&self, dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
        let io = |path: &Path, source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        crate::durable::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut src = File::open(&self.path).map_err(|e| io(&self.path, e))?;
        let mut written = Vec::new();
        for m in &self.members[1..] {
            if m.name == MANIFEST_MEMBER {
                continue;
            }
            let dst = dir.join(&m.name);
            src.seek(SeekFrom::Start(m.offset))
                .map_err(|e| io(&self.path, e))?;
            let mut out = File::create(&dst).map_err(|e| io(&dst, e))?;
            let copied = std::io::copy(&mut (&mut src).take(m.size), &mut out)
                .and_then(|n| out.sync_all().map(|()| n))
                .map_err(|e| io(&dst, e))?;
            if copied != m.size {
                return Err(io(
                    &self.path,
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "member cut short"),
                ));
            }
            written.push(dst);
        }
        crate::durable::sync_dir(dir).map_err(|e| io(dir, e))?;
        Ok(written)
    }
}

/// Why `name` cannot be a member's (or a payload file's) name in a bundle.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        Err("not a plain file name".into())
    } else if name.len() > 255 {
        Err("a name over 255 bytes".into())
    } else {
        Ok(())
    }
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    ino: u64,
}

/// A member's data.
enum Data<'a> {
    Bytes(&'a [u8]),
    /// A file, read twice: once to sum (the checksum is in the header), then to copy;
    /// never held in memory.
    File(&'a Path),
}

impl<W: Write> CpioWriter<W> {
    /// One member: its header, name and data, each padded to four bytes.
    fn member(&mut self, name: &str, data: Data<'_>) -> std::io::Result<()> {
        let with_path = |path: &Path, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        };
        let (size, sum) = match data {
            Data::Bytes(b) => (b.len() as u64, sum_of(&mut &b[..])?.1),
            Data::File(path) => sum_of(&mut File::open(path).map_err(|e| with_path(path, e))?)
                .map_err(|e| with_path(path, e))?,
        };
        let trailer = name == TRAILER;
        self.ino += 1;
        let fields: [u64; 13] = [
            if trailer { 0 } else { self.ino },
            if trailer { 0 } else { 0o100644 },
            0,
            0,
            1,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() as u64 + 1,
            u64::from(sum),
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        header.extend_from_slice(MAGIC_CRC);
        for f in fields {
            header.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        header.resize(pad4(header.len()), 0);
        self.out.write_all(&header)?;
        match data {
            Data::Bytes(b) => self.out.write_all(b)?,
            Data::File(path) => {
                let file = File::open(path).map_err(|e| with_path(path, e))?;
                let mut copy = Summing {
                    inner: BufReader::new(file).take(size),
                    sum: 0,
                };
                let copied = std::io::copy(&mut copy, &mut self.out)?;
                if copied != size || copy.sum != sum {
                    return Err(std::io::Error::other(format!(
                        "{} changed while it was bundled",
                        path.display()
                    )));
                }
            }
        }
        let pad = pad4(size as usize) - size as usize;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += (header.len() + pad) as u64 + size;
        Ok(())
    }
}

/// The size and byte sum (cpio's `070702` checksum) of what `r` reads.
fn sum_of(r: &mut dyn Read) -> std::io::Result<(u64, u32)> {
    let mut s = Summing { inner: r, sum: 0 };
    let n = std::io::copy(&mut s, &mut std::io::sink())?;
    Ok((n, s.sum))
}

/// A reader that sums the bytes it passes on.
struct Summing<R> {
    inner: R,
    sum: u32,
}

impl<R: Read> Read for Summing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sum = buf[..n]
            .iter()
            .fold(self.sum, |s, b| s.wrapping_add(u32::from(*b)));
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
