//! Opens that cost nothing and still catch damage: the first open of each generation verifies
//! every checksum and records it (`verified.json`); later opens of the same unchanged files trust
//! that record and read payloads lazily; `GenerationCollection::verify` trusts nothing, and a full
//! read of the payloads always checks their checksum.

use bitseek_index::input::Vectors;
use bitseek_index::BuildOptions;
use bitseek_store::GenerationCollection;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const DIM: usize = 16;

fn create(dir: &Path, rows: usize) -> GenerationCollection {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let data = (0..rows * DIM)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let payloads: Vec<Value> = (0..rows).map(|i| json!({"row": i, "name": "x"})).collect();
    GenerationCollection::create_or_replace(
        dir,
        Vectors {
            dim: DIM,
            data,
            ids: None,
        },
        &payloads,
        &BuildOptions::default(),
        json!({}),
    )
    .unwrap()
}

/// The current generation's segment and payload files.
fn files(dir: &Path) -> (PathBuf, PathBuf) {
    let c = GenerationCollection::open(dir).unwrap();
    let m = c.manifest();
    (dir.join(&m.segments[0].file), dir.join(&m.payloads.file))
}

/// The byte offset of section `name` in an index file (read from its JSON header).
fn section_offset(bytes: &[u8], name: &str) -> usize {
    let header_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[32..32 + header_len]).unwrap();
    let s = header["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap();
    s["offset"].as_u64().unwrap() as usize
}

/// Rewrites `path` in place through `damage`, keeping its length and modification time: what a
/// disk flipping bits looks like to anything that only looks at metadata.
fn damage_quietly(path: &Path, damage: impl FnOnce(&mut [u8])) {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = fs::read(path).unwrap();
    let len = bytes.len();
    damage(&mut bytes);
    assert_eq!(bytes.len(), len);
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    use std::io::Write;
    (&f).write_all(&bytes).unwrap();
    f.set_modified(modified).unwrap();
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), modified);
}

/// Flips one byte inside the kept f32 vectors of the segment.
fn flip_kept_vector(bytes: &mut [u8]) {
    let at = section_offset(bytes, "keep.f32") + 5;
    bytes[at] ^= 0x10;
}

/// Changes a digit inside one payload line: still valid JSON, one payload per row, wrong checksum.
fn change_a_payload(bytes: &mut [u8]) {
    let at = bytes
        .windows(9)
        .position(|w| w == b"\"row\":17}")
        .expect("row 17's payload")
        + 6;
    bytes[at] = b'8';
}

#[test]
fn the_first_open_of_a_generation_verifies_and_later_opens_trust_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // The writer's own open is the generation's first open.
    assert!(create(&dir, 40).verified_now());
    assert!(dir.join("verified.json").is_file());
    let c = GenerationCollection::open(&dir).unwrap();
    assert!(!c.verified_now(), "the same files were verified already");
    assert_eq!(
        c.payload(39).unwrap(),
        Some(json!({"row": 39, "name": "x"}))
    );
    assert_eq!(c.payload(40).unwrap(), None);
    drop(c);

    // A new generation is verified on its first open, whatever the stamp of the last one said.
    assert!(create(&dir, 41).verified_now());
    assert!(!GenerationCollection::open(&dir).unwrap().verified_now());
    // No stamp (deleted, or a read-only directory that could not keep one): verify.
    fs::remove_file(dir.join("verified.json")).unwrap();
    assert!(GenerationCollection::open(&dir).unwrap().verified_now());
    // A stamp that is not one: verify.
    fs::write(dir.join("verified.json"), "{not json").unwrap();
    assert!(GenerationCollection::open(&dir).unwrap().verified_now());
    assert!(!GenerationCollection::open(&dir).unwrap().verified_now());
}

#[test]
fn a_file_changed_since_its_verification_is_verified_again_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    create(&dir, 40);
    let (segment, _) = files(&dir);
    // Damage that changes the file's modification time: the stamp no longer matches.
    let mut bytes = fs::read(&segment).unwrap();
    flip_kept_vector(&mut bytes);
    fs::write(&segment, &bytes).unwrap();
    let err = GenerationCollection::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch in section `keep.f32`"),
        "{err}"
    );
    assert!(err.contains(&segment.display().to_string()), "{err}");

    let dir = tmp.path().join("d");
    create(&dir, 40);
    let (_, payloads_d) = files(&dir);
    let mut bytes = fs::read(&payloads_d).unwrap();
    change_a_payload(&mut bytes);
    // A replaced file (new inode) with the old length and time is still another file.
    let modified = fs::metadata(&payloads_d).unwrap().modified().unwrap();
    let tmp_file = dir.join("replacement");
    fs::write(&tmp_file, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&tmp_file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    fs::rename(&tmp_file, &payloads_d).unwrap();
    let err = GenerationCollection::open(&dir).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn damage_that_keeps_length_and_time_is_caught_by_verify_and_by_full_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    create(&dir, 40);
    let (segment, _) = files(&dir);

    damage_quietly(&segment, flip_kept_vector);
    // The open trusts its earlier verification (that is what makes it cheap)...
    let c = GenerationCollection::open(&dir).unwrap();
    assert!(!c.verified_now());
    drop(c);
    // ...and the check that trusts nothing finds the damage, naming the file and section.
    let err = GenerationCollection::verify(&dir).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch in section `keep.f32`"),
        "{err}"
    );
    assert!(err.contains(&segment.display().to_string()), "{err}");
    // A failed verification leaves no stamp: every open now verifies, and fails.
    assert!(!dir.join("verified.json").exists());
    assert!(GenerationCollection::open(&dir).is_err());

    let dir = tmp.path().join("d");
    create(&dir, 40);
    let (_, payloads_d) = files(&dir);
    damage_quietly(&payloads_d, change_a_payload);
    let c = GenerationCollection::open(&dir).unwrap();
    // One row's payload is read without the checksum (its line is valid JSON)...
    assert_eq!(
        c.payload(17).unwrap(),
        Some(json!({"row": 87, "name": "x"}))
    );
    // ...but reading them all checks the checksum.
    let err = c.payloads().unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&payloads_d.display().to_string()), "{err}");
    drop(c);
    let err = GenerationCollection::verify(&dir).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn a_damaged_payload_line_is_an_error_not_a_wrong_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    create(&dir, 40);
    let (_, payloads) = files(&dir);
    damage_quietly(&payloads, |b| {
        let at = b.windows(9).position(|w| w == b"\"row\":17}").unwrap();
        b[at] = b'{';
    });
    let c = GenerationCollection::open(&dir).unwrap();
    let err = c.payload(17).unwrap_err().to_string();
    assert!(
        err.contains("row 17") && err.contains("not valid JSON"),
        "{err}"
    );
    assert_eq!(
        c.payload(16).unwrap(),
        Some(json!({"row": 16, "name": "x"}))
    );
}

/// The current generation's row-offset table.
fn offsets_file(dir: &Path) -> PathBuf {
    let c = GenerationCollection::open(dir).unwrap();
    let o = c
        .manifest()
        .payload_offsets
        .clone()
        .expect("a row-offset table");
    assert!(c.has_row_offsets());
    dir.join(o.file)
}

/// Adds `by` to the little-endian u64 at `at`.
fn bump_u64(bytes: &mut [u8], at: usize, by: u64) {
    let v = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    bytes[at..at + 8].copy_from_slice(&(v + by).to_le_bytes());
}

#[test]
fn rows_are_read_through_the_offset_table_written_with_each_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    create(&dir, 40);
    let table = offsets_file(&dir);
    assert_eq!(fs::metadata(&table).unwrap().len(), 24 + 8 * 41);
    let c = GenerationCollection::open(&dir).unwrap();
    assert!(!c.verified_now());
    for row in [0, 1, 17, 39] {
        assert_eq!(
            c.payload(row).unwrap(),
            Some(json!({"row": row, "name": "x"}))
        );
    }
    assert_eq!(c.payload(40).unwrap(), None);
    assert!(c.size_bytes() > fs::metadata(&table).unwrap().len());
    drop(c);
    // The next generation has its own table; the old one is deleted with its generation.
    create(&dir, 41);
    assert!(!table.exists());
    assert_ne!(offsets_file(&dir), table);
}

#[test]
fn a_damaged_truncated_or_missing_offset_table_is_caught() {
    let tmp = tempfile::tempdir().unwrap();

    // Damage that keeps length and time: the open trusts its verification, the lookup of the
    // damaged row finds its offset off a line boundary, and verify finds the checksum.
    let dir = tmp.path().join("quiet");
    create(&dir, 40);
    let table = offsets_file(&dir);
    damage_quietly(&table, |b| bump_u64(b, 24 + 8 * 17, 1));
    let c = GenerationCollection::open(&dir).unwrap();
    assert!(!c.verified_now());
    let err = c.payload(17).unwrap_err().to_string();
    assert!(
        err.contains("row 17") && err.contains("row-offset"),
        "{err}"
    );
    assert!(err.contains(&table.display().to_string()), "{err}");
    assert_eq!(
        c.payload(20).unwrap(),
        Some(json!({"row": 20, "name": "x"}))
    );
    drop(c);
    let err = GenerationCollection::verify(&dir).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&table.display().to_string()), "{err}");

    // A table rewritten (a new modification time): the open verifies it again and fails.
    let dir = tmp.path().join("shifted");
    create(&dir, 40);
    let table = offsets_file(&dir);
    let line = fs::read(dir.join("payloads-1.jsonl")).unwrap();
    let first = line.iter().position(|&b| b == b'\n').unwrap() as u64 + 1;
    let mut bytes = fs::read(&table).unwrap();
    bump_u64(&mut bytes, 24, first);
    fs::write(&table, &bytes).unwrap();
    let err = GenerationCollection::open(&dir).unwrap_err().to_string();
    assert!(err.contains(&table.display().to_string()), "{err}");

    // Truncated: caught by every open, verified or not.
    let dir = tmp.path().join("short");
    create(&dir, 40);
    let table = offsets_file(&dir);
    let bytes = fs::read(&table).unwrap();
    let modified = fs::metadata(&table).unwrap().modified().unwrap();
    let f = fs::OpenOptions::new().write(true).open(&table).unwrap();
    f.set_len(bytes.len() as u64 - 8).unwrap();
    f.set_modified(modified).unwrap();
    let err = GenerationCollection::open(&dir).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains(&table.display().to_string()), "{err}");

    // Missing.
    let dir = tmp.path().join("gone");
    create(&dir, 40);
    let table = offsets_file(&dir);
    fs::remove_file(&table).unwrap();
    let err = GenerationCollection::open(&dir).unwrap_err().to_string();
    assert!(err.contains("row-offset table is missing"), "{err}");
    assert!(err.contains(&table.display().to_string()), "{err}");
}

#[test]
fn a_generation_written_before_offset_tables_is_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    create(&dir, 40);
    // What an older bitseek wrote: the same files without the table or its manifest entry.
    fs::remove_file(offsets_file(&dir)).unwrap();
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("payload_offsets");
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let c = GenerationCollection::open(&dir).unwrap();
    assert!(c.verified_now());
    assert!(!c.has_row_offsets());
    drop(c);
    let c = GenerationCollection::open(&dir).unwrap();
    assert!(!c.verified_now());
    assert_eq!(
        c.payload(39).unwrap(),
        Some(json!({"row": 39, "name": "x"}))
    );
    assert_eq!(c.payload(40).unwrap(), None);
    assert!(GenerationCollection::verify(&dir).is_ok());
}
