//! The index file: one checksummed file that loads by `mmap`.
//!
//! An index is a JSON metadata document (opaque here) plus named binary sections (opaque byte
//! arrays, up to several GB). Keeping it in one file makes it easy to copy and impossible to mix up
//! halves of two builds; mapping it makes opening cheap and lets the OS page the codes in and out.
//!
//! # Layout (format version 1, all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"BITSEEK\0"
//!      8     4  format version (u32) = 1
//!     12     4  reserved (u32), written as 0
//!     16     8  header length H (u64)
//!     24     8  total file length (u64)
//!     32     H  header: JSON {"meta": <meta>, "sections": [{"name", "offset", "len", "xxh3"}]}
//!   32+H     8  xxh3-64 of bytes [0, 32+H): the fixed prefix and the header
//!      …        sections, in header order, each at an offset that is a multiple of 64
//! ```
//!
//! `offset` and `len` are byte counts from the start of the file; `xxh3` is the xxh3-64 of the
//! section's bytes as 16 lowercase hex digits (a string, so JSON tools that read numbers as `f64`
//! keep it intact). Sections do not overlap and appear in increasing offset order. Every byte that
//! no section covers (alignment padding after the header checksum and between sections) is zero, so
//! a single flipped bit anywhere in the file is detected. The header may end in spaces: the writer
//! pads it to settle the circular dependency between header length and section offsets.
//!
//! The 64-byte alignment (and the page-aligned mapping) lets callers view a section as `&[u64]`,
//! `&[f32]` or `&[i8]` without copying and read it with aligned SIMD loads.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// First eight bytes of every index file.
pub const MAGIC: [u8; 8] = *b"BITSEEK\0";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Alignment of every section's offset in the file, in bytes.
pub const SECTION_ALIGN: u64 = 64;

/// Size of the fixed prefix: magic, version, reserved, header length, total length.
const PREFIX_LEN: u64 = 32;
/// Size of the header checksum that follows the header.
const CHECKSUM_LEN: u64 = 8;
/// Zeros to copy into padding without allocating.
const ZEROS: [u8; SECTION_ALIGN as usize] = [0; SECTION_ALIGN as usize];

/// Everything that can go wrong writing or reading an index file.
///
/// Every message names the file and says what to do, because these reach users of the command line
/// directly.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The OS refused a read, write, rename or sync.
    #[error("I/O error on `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the magic bytes.
    #[error("`{}` is not a bitseek index (bad magic); build one with `bitseek build`", path.display())]
    NotAnIndex {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a bitseek with a different format version.
    #[error(
        "`{}` uses index format version {found}, but this bitseek reads version {supported}; \
         rebuild with this version of bitseek",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// What the file has.
        found: u32,
        /// The version this bitseek reads.
        supported: u32,
    },
    /// The file is shorter than its header says. If it is too short to hold the recorded length,
    /// `expected` is the smallest length that could hold it.
    #[error(
        "`{}` is truncated: {found} bytes, expected {expected}; it was cut short (interrupted copy \
         or build?): copy it again or rebuild the index",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error(
        "`{}` has {found} bytes but its header records {expected}; data was appended to it: copy it \
         again or rebuild the index",
        path.display()
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header records.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// The fixed prefix or the JSON header does not match its checksum.
    #[error("`{}` is corrupt (header checksum mismatch); rebuild the index", path.display())]
    HeaderChecksum {
        /// The file.
        path: PathBuf,
    },
    /// A section's bytes do not match their checksum.
    #[error("`{}` is corrupt (checksum mismatch in section `{section}`); rebuild the index", path.display())]
    SectionChecksum {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
    },
    /// A padding byte that must be zero is not.
    #[error("`{}` is corrupt (nonzero padding byte at offset {offset}); rebuild the index", path.display())]
    CorruptPadding {
        /// The file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
    },
    /// The header passed its checksum but does not describe a valid layout.
    #[error("`{}` has an invalid header ({reason}); rebuild the index", path.display())]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// A section lies (partly) outside the file.
    #[error(
        "`{}` is corrupt: section `{section}` (offset {offset}, {len} bytes) extends past the end of \
         the {file_len}-byte file; rebuild the index",
        path.display()
    )]
    SectionOutOfBounds {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
        /// Byte offset in the file.
        offset: u64,
        /// The section's length in bytes.
        len: u64,
        /// The file's length in bytes.
        file_len: u64,
    },
    /// The caller asked for a section the file does not have.
    #[error(
        "`{}` has no section `{section}`; it was built by another bitseek or with other options: \
         rebuild the index",
        path.display()
    )]
    MissingSection {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
    },
    /// A section cannot be viewed as a slice of the requested type.
    #[error(
        "section `{section}` of `{}` ({len} bytes) cannot be read as [{type_name}]: {reason}; \
         rebuild the index with this version of bitseek",
        path.display()
    )]
    BadSectionType {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
        /// The element type asked for.
        type_name: &'static str,
        /// The section's length in bytes.
        len: u64,
        /// What is wrong, in a few words.
        reason: String,
    },
    /// Two sections share a name (in the writer's input, or in a file's header).
    #[error("`{}`: section name `{section}` appears twice; section names must be unique", path.display())]
    DuplicateSection {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
    },
}

impl FormatError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn corrupt(path: &Path, reason: impl fmt::Display) -> Self {
        Self::CorruptHeader {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The JSON header as written; borrows so writing copies nothing.
#[derive(Serialize)]
struct HeaderOut<'a> {
    meta: &'a serde_json::Value,
    sections: Vec<SectionOut<'a>>,
}

#[derive(Serialize)]
struct SectionOut<'a> {
    name: &'a str,
    offset: u64,
    len: u64,
    xxh3: String,
}

/// The JSON header as read.
#[derive(Deserialize)]
struct HeaderIn {
    meta: serde_json::Value,
    sections: Vec<SectionIn>,
}

#[derive(Deserialize)]
struct SectionIn {
    name: String,
    offset: u64,
    len: u64,
    xxh3: String,
}

/// A validated section: its byte range in the map, and its recorded checksum.
#[derive(Debug)]
struct Section {
    name: String,
    start: usize,
    len: usize,
    xxh3: u64,
}

/// Rounds `x` up to a multiple of [`SECTION_ALIGN`]; `None` on overflow.
fn align_up(x: u64) -> Option<u64> {
    Some(x.checked_add(SECTION_ALIGN - 1)? & !(SECTION_ALIGN - 1))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Parses exactly 16 hex digits (`from_str_radix` alone would also take a sign or fewer digits).
fn parse_hex64(s: &str) -> Option<u64> {
    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `<path>.tmp`: a sibling, so the final rename stays within one file system and is atomic.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Removes the temporary file on drop unless disarmed, so no error path leaves one behind.
struct TmpGuard<'a> {
    path: &'a Path,
    armed: bool,
}

impl Drop for TmpGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: we are already returning the error that matters.
            let _ = fs::remove_file(self.path);
        }
    }
}

/// Writes an index file atomically and returns its length in bytes.
///
/// The file is written to `<path>.tmp`, synced, renamed over `path`, and the directory is synced,
/// so after a crash `path` holds either the old index or the complete new one, never a partial
/// file. Sections are streamed from the given slices in order; nothing is concatenated in memory.
/// Readers that already have the old file open keep seeing the old contents (the rename leaves
/// their inode alone). Two writers to the same `path` at once are not supported: they share the
/// temporary file.
///
/// Fails with [`FormatError::DuplicateSection`] before touching the disk if two sections share a
/// name.
pub fn write_index(
    path: &Path,
    meta: &serde_json::Value,
    sections: &[(&str, &[u8])],
) -> Result<u64, FormatError> {
    for (i, (name, _)) in sections.iter().enumerate() {
        if sections[..i].iter().any(|(n, _)| n == name) {
            return Err(FormatError::DuplicateSection {
                path: path.to_owned(),
                section: (*name).to_owned(),
            });
        }
    }
    let too_large = || {
        FormatError::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "sections too large for one index file",
            ),
        )
    };

    let hashes: Vec<String> = sections
        .iter()
        .map(|(_, data)| format!("{:016x}", xxh3_64(data)))
        .collect();

    // Section offsets depend on the header length, which depends on the offsets' digits. Assume a
    // header length, lay out, serialize; if the header fits, pad it with spaces, else retry with
    // the longer length. The assumed length only grows, and the header's length is bounded, so
    // this ends after a few rounds.
    let mut header_len: u64 = 0;
    let (header, offsets, total_len) = loop {
        let data_start = PREFIX_LEN
            .checked_add(header_len)
            .and_then(|x| x.checked_add(CHECKSUM_LEN))
            .ok_or_else(too_large)?;
        let mut end = data_start;
        let mut offsets = Vec::with_capacity(sections.len());
        for (_, data) in sections {
            let offset = align_up(end).ok_or_else(too_large)?;
            offsets.push(offset);
            end = offset
                .checked_add(data.len() as u64)
                .ok_or_else(too_large)?;
        }
        let out = HeaderOut {
            meta,
            sections: sections
                .iter()
                .zip(&offsets)
                .zip(&hashes)
                .map(|(((name, data), &offset), hash)| SectionOut {
                    name,
                    offset,
                    len: data.len() as u64,
                    xxh3: hash.clone(),
                })
                .collect(),
        };
        let mut json = serde_json::to_vec(&out)
            .map_err(|e| FormatError::io(path, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        if json.len() as u64 <= header_len {
            json.resize(header_len as usize, b' ');
            break (json, offsets, end);
        }
        header_len = json.len() as u64;
    };

    let mut prefix = Vec::with_capacity((PREFIX_LEN + header_len + CHECKSUM_LEN) as usize);
    prefix.extend_from_slice(&MAGIC);
    prefix.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    prefix.extend_from_slice(&0u32.to_le_bytes());
    prefix.extend_from_slice(&header_len.to_le_bytes());
    prefix.extend_from_slice(&total_len.to_le_bytes());
    prefix.extend_from_slice(&header);
    let checksum = xxh3_64(&prefix);
    prefix.extend_from_slice(&checksum.to_le_bytes());

    let tmp = tmp_path(path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| FormatError::io(&tmp, e))?;
    let mut guard = TmpGuard {
        path: &tmp,
        armed: true,
    };
    // Large section writes bypass the buffer; it only gathers the small pieces.
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let io_err = |e| FormatError::io(&tmp, e);
    w.write_all(&prefix).map_err(io_err)?;
    let mut pos = prefix.len() as u64;
    for ((_, data), &offset) in sections.iter().zip(&offsets) {
        // `offset - pos < SECTION_ALIGN` by construction of the layout above.
        w.write_all(&ZEROS[..(offset - pos) as usize])
            .map_err(io_err)?;
        w.write_all(data).map_err(io_err)?;
        pos = offset + data.len() as u64;
    }
    debug_assert_eq!(pos, total_len);
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err)?;
    guard.armed = false;
    sync_parent_dir(path)?;
    Ok(total_len)
}

/// Makes the rename durable: on POSIX systems a rename is only on disk once its directory is.
#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> Result<(), FormatError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FormatError::io(dir, e))
}

/// Other systems cannot open a directory to sync it; the rename is as durable as they make it.
#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> Result<(), FormatError> {
    Ok(())
}

/// An open, validated index file, mapped into memory.
///
/// Sections are borrowed straight from the mapping. The mapping assumes the file is not modified
/// while open: [`write_index`] never modifies a file in place (it replaces it by rename), but
/// another program truncating or rewriting the file would make reads fault or change under us.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
    map: Mmap,
    meta: serde_json::Value,
    sections: Vec<Section>,
}

impl IndexFile {
    /// Opens and fully verifies an index: structure, header checksum and the checksum of every
    /// section. This reads the whole file once (xxh3 runs at memory speed), which also warms the
    /// page cache for the search that follows.
    pub fn open(path: &Path) -> Result<IndexFile, FormatError> {
        let index = Self::open_unverified(path)?;
        for s in &index.sections {
            if xxh3_64(&index.map[s.start..s.start + s.len]) != s.xxh3 {
                return Err(FormatError::SectionChecksum {
                    path: index.path.clone(),
                    section: s.name.clone(),
                });
            }
        }
        Ok(index)
    }

    /// Opens an index checking everything [`open`](Self::open) does except the per-section
    /// checksums, so it reads only the header and the padding, not the sections.
    ///
    /// For callers that verified this file already (e.g. a server reopening it): corrupt section
    /// bytes then go unnoticed and surface as wrong search results, never as unsafety.
    pub fn open_unverified(path: &Path) -> Result<IndexFile, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let size = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
        if size == 0 {
            // Mapping an empty file fails on some systems; it is no index either way.
            return Err(FormatError::NotAnIndex {
                path: path.to_owned(),
            });
        }
        // SAFETY: the mapping is read-only and lives in `IndexFile` next to the slices borrowed
        // from it. Its contents are only sound to read while no one modifies the file; bitseek
        // replaces index files by rename and never writes one in place, and the type's docs state
        // the requirement for other writers. All parsing below treats the bytes as untrusted.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        let (meta, sections) = parse(path, &map)?;
        Ok(IndexFile {
            path: path.to_owned(),
            map,
            meta,
            sections,
        })
    }

    /// The metadata document stored by the writer.
    pub fn meta(&self) -> &serde_json::Value {
        &self.meta
    }

    /// The path the index was opened from, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The names of the sections, in file order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str())
    }

    /// The bytes of section `name`; its start is aligned to [`SECTION_ALIGN`] bytes in memory.
    pub fn section(&self, name: &str) -> Result<&[u8], FormatError> {
        let s = self
            .sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| FormatError::MissingSection {
                path: self.path.clone(),
                section: name.to_owned(),
            })?;
        Ok(&self.map[s.start..s.start + s.len])
    }

    /// Section `name` viewed as a slice of `T`, without copying.
    ///
    /// Fails with [`FormatError::BadSectionType`] if the section's length is not a multiple of
    /// `size_of::<T>()` or `T` needs more alignment than [`SECTION_ALIGN`].
    pub fn section_as<T: bytemuck::Pod>(&self, name: &str) -> Result<&[T], FormatError> {
        let bytes = self.section(name)?;
        bytemuck::try_cast_slice(bytes).map_err(|e| {
            let reason = match e {
                bytemuck::PodCastError::OutputSliceWouldHaveSlop => format!(
                    "its length is not a multiple of {} bytes",
                    std::mem::size_of::<T>()
                ),
                bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => format!(
                    "the type needs {}-byte alignment",
                    std::mem::align_of::<T>()
                ),
                other => format!("{other:?}"),
            };
            FormatError::BadSectionType {
                path: self.path.clone(),
                section: name.to_owned(),
                type_name: std::any::type_name::<T>(),
                len: bytes.len() as u64,
                reason,
            }
        })
    }
}

/// Checks the bytes of an index file as [`IndexFile::open_unverified`] does (prefix, header and its
/// checksum, section table, zero padding; not the section checksums) and returns the metadata.
/// Never panics, whatever the bytes: the `segment_header` fuzz target feeds it arbitrary input.
pub fn check_header(bytes: &[u8]) -> Result<serde_json::Value, FormatError> {
    parse(Path::new("<bytes>"), bytes).map(|(meta, _)| meta)
}

/// Validates everything but the section checksums. Never panics: every offset from the file goes
/// through checked arithmetic and is bounds-checked before it is used to index.
fn parse(path: &Path, bytes: &[u8]) -> Result<(serde_json::Value, Vec<Section>), FormatError> {
    let size = bytes.len() as u64;
    let truncated = |expected: u64| FormatError::Truncated {
        path: path.to_owned(),
        expected,
        found: size,
    };
    let min_len = PREFIX_LEN + CHECKSUM_LEN;

    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] || bytes.is_empty() {
        return Err(FormatError::NotAnIndex {
            path: path.to_owned(),
        });
    }
    if bytes.len() < 12 {
        return Err(truncated(min_len));
    }
    // The version comes before anything else: another version may lay out the rest differently.
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if size < PREFIX_LEN {
        return Err(truncated(min_len));
    }
    let header_len = read_u64(bytes, 16);
    let total_len = read_u64(bytes, 24);
    // Checksum before trusting the lengths, so a flipped bit in them reads as corruption. If the
    // header does not fit, the file is most likely cut short; the recorded total length (not yet
    // verified) is the best guess of what it should be.
    let header_end = PREFIX_LEN
        .checked_add(header_len)
        .filter(|&e| e.checked_add(CHECKSUM_LEN).is_some_and(|d| d <= size));
    let Some(header_end) = header_end else {
        let needed = PREFIX_LEN
            .saturating_add(header_len)
            .saturating_add(CHECKSUM_LEN);
        return Err(truncated(needed.max(total_len)));
    };
    let header_end = header_end as usize; // <= size, which is a usize
    if xxh3_64(&bytes[..header_end]) != read_u64(bytes, header_end) {
        return Err(FormatError::HeaderChecksum {
            path: path.to_owned(),
        });
    }
    if total_len > size {
        return Err(truncated(total_len));
    }
    if total_len < size {
        return Err(FormatError::TrailingBytes {
            path: path.to_owned(),
            expected: total_len,
            found: size,
        });
    }

    let header: HeaderIn = serde_json::from_slice(&bytes[PREFIX_LEN as usize..header_end])
        .map_err(|e| FormatError::corrupt(path, format!("header is not valid JSON: {e}")))?;

    let mut sections: Vec<Section> = Vec::with_capacity(header.sections.len());
    // Bytes in [covered_to, next section) must be zero padding.
    let mut covered_to = header_end + CHECKSUM_LEN as usize;
    for s in header.sections {
        if sections.iter().any(|p| p.name == s.name) {
            return Err(FormatError::DuplicateSection {
                path: path.to_owned(),
                section: s.name,
            });
        }
        let xxh3 = parse_hex64(&s.xxh3).ok_or_else(|| {
            FormatError::corrupt(
                path,
                format!(
                    "section `{}` has checksum {:?}, not 16 hex digits",
                    s.name, s.xxh3
                ),
            )
        })?;
        let end = s.offset.checked_add(s.len).filter(|&e| e <= size);
        let Some(end) = end else {
            return Err(FormatError::SectionOutOfBounds {
                path: path.to_owned(),
                section: s.name,
                offset: s.offset,
                len: s.len,
                file_len: size,
            });
        };
        if s.offset & (SECTION_ALIGN - 1) != 0 {
            return Err(FormatError::corrupt(
                path,
                format!(
                    "section `{}` starts at offset {}, not a multiple of {SECTION_ALIGN}",
                    s.name, s.offset
                ),
            ));
        }
        // Both fit in usize: they are at most `size`, the length of a slice.
        let (start, end) = (s.offset as usize, end as usize);
        if start < covered_to {
            return Err(FormatError::corrupt(
                path,
                format!(
                    "section `{}` at offset {} overlaps the header or the previous section",
                    s.name, s.offset
                ),
            ));
        }
        check_zero(path, bytes, covered_to, start)?;
        covered_to = end;
        sections.push(Section {
            name: s.name,
            start,
            len: end - start,
            xxh3,
        });
    }
    check_zero(path, bytes, covered_to, bytes.len())?;
    Ok((header.meta, sections))
}

/// Checks that the padding `bytes[from..to]` is all zero.
fn check_zero(path: &Path, bytes: &[u8], from: usize, to: usize) -> Result<(), FormatError> {
    match bytes[from..to].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(FormatError::CorruptPadding {
            path: path.to_owned(),
            offset: (from + i) as u64,
        }),
    }
}
