//! Tests of the index file format: round trips, layout, and that damaged or foreign files give clean
//! errors (never a panic, never `Ok` with different data).

use std::fs;
use std::path::{Path, PathBuf};

use bitseek_index::format::{write_index, FormatError, IndexFile, FORMAT_VERSION, MAGIC};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::json;
use xxhash_rust::xxh3::xxh3_64;

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// A small index whose every byte the exhaustive tests can afford to damage.
fn small_index(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("small.bsk");
    let codes = random_bytes(40, 1);
    let ids: Vec<u8> = (0u64..3).flat_map(|i| i.to_le_bytes()).collect();
    write_index(
        &path,
        &json!({"metric": "l2", "dim": 5}),
        &[("codes", &codes), ("empty", &[]), ("ids", &ids)],
    )
    .expect("write small index");
    let bytes = fs::read(&path).expect("read small index");
    (path, bytes)
}

/// Writes `bytes` to a fresh file in `dir` and opens it.
fn open_bytes(dir: &Path, bytes: &[u8]) -> Result<IndexFile, FormatError> {
    let path = dir.join("damaged.bsk");
    fs::write(&path, bytes).expect("write test file");
    IndexFile::open(&path)
}

/// A file with a correct prefix and header checksum around an arbitrary header, so the tests reach
/// the validation behind the checksum.
fn raw_file(header: &str, body: &[u8]) -> Vec<u8> {
    let header_len = header.len() as u64;
    let total = 32 + header_len + 8 + body.len() as u64;
    let mut v = Vec::new();
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&header_len.to_le_bytes());
    v.extend_from_slice(&total.to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    let sum = xxh3_64(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v.extend_from_slice(body);
    v
}

fn hex(data: &[u8]) -> String {
    format!("{:016x}", xxh3_64(data))
}

#[test]
fn round_trip_with_empty_and_large_sections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.bsk");
    let meta = json!({"metric": "ip", "quantizer": {"bits": 1, "scale": [0.5, 1.25]}});
    let codes: Vec<u8> = random_bytes(1000, 2)[..1000].to_vec();
    let big = random_bytes(5 << 20, 3);
    let factors: Vec<f32> = (0..777).map(|i| i as f32 * 0.5).collect();
    let ids: Vec<u64> = (0..33).map(|i| i * 1_000_003).collect();
    let int8: Vec<i8> = (-50..51).collect();
    let sections: [(&str, &[u8]); 6] = [
        ("codes", &codes),
        ("empty", &[]),
        ("factors", bytemuck::cast_slice(&factors)),
        ("big", &big),
        ("ids", bytemuck::cast_slice(&ids)),
        ("rescore", bytemuck::cast_slice(&int8)),
    ];
    let written = write_index(&path, &meta, &sections).unwrap();
    assert_eq!(written, fs::metadata(&path).unwrap().len());
    assert!(!dir.path().join("index.bsk.tmp").exists());

    for index in [
        IndexFile::open(&path).unwrap(),
        IndexFile::open_unverified(&path).unwrap(),
    ] {
        assert_eq!(index.meta(), &meta);
        assert_eq!(index.path(), path);
        assert_eq!(index.file_len(), written);
        let names: Vec<&str> = index.section_names().collect();
        assert_eq!(
            names,
            ["codes", "empty", "factors", "big", "ids", "rescore"]
        );
        for (name, data) in sections {
            let got = index.section(name).unwrap();
            assert_eq!(got, data, "section {name}");
            assert_eq!(
                got.as_ptr() as usize % 64,
                0,
                "section {name} is not 64-byte aligned"
            );
        }
        assert_eq!(index.section_as::<f32>("factors").unwrap(), &factors[..]);
        assert_eq!(index.section_as::<u64>("ids").unwrap(), &ids[..]);
        assert_eq!(index.section_as::<i8>("rescore").unwrap(), &int8[..]);
        assert_eq!(index.section_as::<u64>("codes").unwrap().len(), 125);
        assert!(index.section_as::<u64>("empty").unwrap().is_empty());
        assert!(index.section_as::<f32>("empty").unwrap().is_empty());
    }
}

#[test]
fn layout_matches_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_index(dir.path());
    assert_eq!(&bytes[..8], b"BITSEEK\0");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 0);
    let header_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let total = u64::from_le_bytes(bytes[24..32].try_into().unwrap());
    assert_eq!(total, bytes.len() as u64);
    let header: serde_json::Value = serde_json::from_slice(&bytes[32..32 + header_len]).unwrap();
    let sum = u64::from_le_bytes(bytes[32 + header_len..40 + header_len].try_into().unwrap());
    assert_eq!(sum, xxh3_64(&bytes[..32 + header_len]));
    assert_eq!(header["meta"], json!({"metric": "l2", "dim": 5}));
    let sections = header["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 3);
    for s in sections {
        let offset = s["offset"].as_u64().unwrap() as usize;
        let len = s["len"].as_u64().unwrap() as usize;
        assert_eq!(offset % 64, 0);
        assert!(offset >= 40 + header_len);
        assert_eq!(
            s["xxh3"].as_str().unwrap(),
            hex(&bytes[offset..offset + len])
        );
    }
    assert_eq!(sections[0]["name"], "codes");
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_index(dir.path());
    for cut in 0..bytes.len() {
        match open_bytes(dir.path(), &bytes[..cut]) {
            Err(FormatError::NotAnIndex { .. }) if cut == 0 => {}
            Err(FormatError::Truncated {
                expected, found, ..
            }) if cut > 0 => {
                assert_eq!(found, cut as u64);
                assert!(expected > found, "cut {cut}: expected {expected}");
            }
            other => panic!("cut at {cut}: unexpected {other:?}"),
        }
    }
}

#[test]
fn truncation_of_a_large_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.bsk");
    let big = random_bytes(3 << 20, 4);
    let len = write_index(&path, &json!(null), &[("a", &big[..1 << 20]), ("b", &big)]).unwrap();
    let bytes = fs::read(&path).unwrap();
    for cut in [1, 40, 100, 1 << 20, 2 << 20, len as usize - 1] {
        for open in [IndexFile::open, IndexFile::open_unverified] {
            fs::write(&path, &bytes[..cut]).unwrap();
            match open(&path) {
                // Too short to hold the recorded length: only a lower bound is known.
                Err(FormatError::Truncated { expected, .. }) if cut < 32 => assert!(expected > 1),
                Err(FormatError::Truncated { expected, .. }) => assert_eq!(expected, len),
                other => panic!("cut at {cut}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn every_flipped_bit_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_index(dir.path());
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            if let Ok(index) = open_bytes(dir.path(), &damaged) {
                panic!("flipping bit {bit} of byte {i} went unnoticed: {index:?}");
            }
        }
    }
}

#[test]
fn appended_bytes_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut bytes) = small_index(dir.path());
    bytes.push(0);
    assert!(matches!(
        open_bytes(dir.path(), &bytes),
        Err(FormatError::TrailingBytes { .. })
    ));
}

#[test]
fn foreign_files_are_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [
        vec![],
        vec![0u8; 4096],
        vec![0u8; 3],
        b"{\"meta\": 1}".to_vec(),
    ] {
        let err = open_bytes(dir.path(), &bytes).unwrap_err();
        assert!(matches!(err, FormatError::NotAnIndex { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("damaged.bsk") && msg.contains("bitseek build"),
            "{msg}"
        );
    }
    let (_, mut bytes) = small_index(dir.path());
    bytes[0] = b'b';
    assert!(matches!(
        open_bytes(dir.path(), &bytes),
        Err(FormatError::NotAnIndex { .. })
    ));
}

#[test]
fn other_versions_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut bytes) = small_index(dir.path());
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = open_bytes(dir.path(), &bytes).unwrap_err();
    match &err {
        FormatError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((*found, *supported), (2, 1)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("rebuild"), "{err}");
    // A version alone (the rest of the file gone) is enough to tell.
    assert!(matches!(
        open_bytes(dir.path(), &bytes[..12]),
        Err(FormatError::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn missing_section_names_section_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_index(dir.path());
    let index = IndexFile::open(&path).unwrap();
    let err = index.section("rescore").unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingSection { section, path: p } if section == "rescore" && *p == path)
    );
    let msg = err.to_string();
    assert!(msg.contains("rescore") && msg.contains("small.bsk") && msg.contains("rebuild"));
    assert!(matches!(
        index.section_as::<u64>("rescore"),
        Err(FormatError::MissingSection { .. })
    ));
}

#[test]
fn section_as_checks_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.bsk");
    write_index(
        &path,
        &json!({}),
        &[("seven", &[1u8; 7]), ("six", &[2u8; 6])],
    )
    .unwrap();
    let index = IndexFile::open(&path).unwrap();
    let err = index.section_as::<u64>("seven").unwrap_err();
    match &err {
        FormatError::BadSectionType {
            section,
            len,
            type_name,
            ..
        } => {
            assert_eq!((section.as_str(), *len), ("seven", 7));
            assert!(type_name.contains("u64"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("types.bsk"));
    assert!(matches!(
        index.section_as::<f32>("six"),
        Err(FormatError::BadSectionType { .. })
    ));
    assert_eq!(index.section_as::<u16>("six").unwrap(), &[0x0202; 3]);
    assert_eq!(index.section_as::<i8>("seven").unwrap(), &[1i8; 7]);
}

#[test]
fn crafted_headers_are_rejected_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = [7u8; 16];
    let h = hex(&data);
    let section = |name: &str, offset: u64, len: u64, xxh3: &str| {
        format!(r#"{{"name":"{name}","offset":{offset},"len":{len},"xxh3":"{xxh3}"}}"#)
    };
    // Headers are padded to 200 bytes, so the first aligned offset is always 256.
    let start = 256u64;
    let file = |sections: &[String], body_len: usize| {
        let header = format!(r#"{{"meta":null,"sections":[{}]}}"#, sections.join(","));
        let header = format!("{header:200}");
        assert_eq!(header.len(), 200);
        let mut body = vec![0u8; 16 + body_len];
        body[16..].fill(7);
        (raw_file(&header, &body), start)
    };
    let good = file(&[section("a", start, 16, &h)], 16).0;
    open_bytes(dir.path(), &good).expect("the crafted reference file is valid");

    type Check = fn(&FormatError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (file(&[section("a", u64::MAX - 3, 16, &h)], 16).0, |e| {
            matches!(e, FormatError::SectionOutOfBounds { .. })
        }),
        (file(&[section("a", start, u64::MAX, &h)], 16).0, |e| {
            matches!(e, FormatError::SectionOutOfBounds { .. })
        }),
        (file(&[section("a", start + 64, 16, &h)], 16).0, |e| {
            matches!(e, FormatError::SectionOutOfBounds { .. })
        }),
        (file(&[section("a", start + 8, 8, &h)], 16).0, |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
        (file(&[section("a", 0, 16, &h)], 16).0, |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
        (
            file(
                &[section("a", start, 16, &h), section("b", start, 16, &h)],
                16,
            )
            .0,
            |e| matches!(e, FormatError::CorruptHeader { .. }),
        ),
        (
            file(
                &[section("a", start, 16, &h), section("a", start + 16, 0, &h)],
                16,
            )
            .0,
            |e| matches!(e, FormatError::DuplicateSection { .. }),
        ),
        (file(&[section("a", start, 16, "+123")], 16).0, |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
        (
            file(&[section("a", start, 16, &"0".repeat(16))], 16).0,
            |e| matches!(e, FormatError::SectionChecksum { .. }),
        ),
        (raw_file("not json", &[]), |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
        (raw_file(r#"{"meta":1}"#, &[]), |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
        (raw_file(&"[".repeat(100_000), &[]), |e| {
            matches!(e, FormatError::CorruptHeader { .. })
        }),
    ];
    for (i, (bytes, expected)) in cases.iter().enumerate() {
        let err = open_bytes(dir.path(), bytes).unwrap_err();
        assert!(expected(&err), "case {i}: unexpected {err:?}");
        assert!(err.to_string().contains("damaged.bsk"), "case {i}: {err}");
    }

    // Nonzero padding between the header checksum and the section.
    let mut padded = good.clone();
    padded[start as usize - 1] = 1;
    // Keep the header checksum valid: padding is outside it.
    assert!(matches!(
        open_bytes(dir.path(), &padded),
        Err(FormatError::CorruptPadding { offset, .. }) if offset == start - 1
    ));

    // A header length so large that adding to it overflows.
    let mut huge = good.clone();
    huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        open_bytes(dir.path(), &huge),
        Err(FormatError::Truncated { .. })
    ));
    huge[16..24].copy_from_slice(&(u64::MAX - 40).to_le_bytes());
    assert!(matches!(
        open_bytes(dir.path(), &huge),
        Err(FormatError::Truncated { .. })
    ));
}

#[test]
fn write_replaces_an_existing_index_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.bsk");
    let tmp = dir.path().join("index.bsk.tmp");
    write_index(&path, &json!({"v": 1}), &[("codes", &[1u8; 100])]).unwrap();
    let old = IndexFile::open(&path).unwrap();

    // A stale temporary file from a crashed writer is overwritten, not appended to.
    fs::write(&tmp, b"garbage from an earlier crash").unwrap();
    write_index(
        &path,
        &json!({"v": 2}),
        &[("codes", &[2u8; 300]), ("ids", &[3u8; 8])],
    )
    .unwrap();
    assert!(!tmp.exists());

    // The mapping of the replaced file still shows the old contents: the rename left it alone.
    assert_eq!(old.meta(), &json!({"v": 1}));
    assert_eq!(old.section("codes").unwrap(), &[1u8; 100]);
    let new = IndexFile::open(&path).unwrap();
    assert_eq!(new.meta(), &json!({"v": 2}));
    assert_eq!(new.section("codes").unwrap(), &[2u8; 300]);
    assert_eq!(new.section("ids").unwrap(), &[3u8; 8]);
}

#[test]
fn failed_writes_leave_the_old_index_and_no_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.bsk");
    write_index(&path, &json!({"v": 1}), &[("codes", &[1u8; 100])]).unwrap();
    let before = fs::read(&path).unwrap();

    // Duplicate names are refused before anything is written.
    let err = write_index(
        &path,
        &json!({"v": 2}),
        &[("a", &[1]), ("b", &[2]), ("a", &[3])],
    )
    .unwrap_err();
    assert!(matches!(&err, FormatError::DuplicateSection { section, .. } if section == "a"));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(!dir.path().join("index.bsk.tmp").exists());

    // The rename fails when the target is a directory; the finished temporary file is removed.
    let target = dir.path().join("a-directory");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    let err = write_index(&target, &json!({}), &[("codes", &[1u8; 10])]).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
    assert!(!dir.path().join("a-directory.tmp").exists());
    assert!(target.join("keep").exists());

    // The temporary file cannot be created in a missing directory; nothing appears.
    let missing = dir.path().join("no-such-dir").join("index.bsk");
    let err = write_index(&missing, &json!({}), &[]).unwrap_err();
    assert!(
        matches!(&err, FormatError::Io { path, .. } if path.ends_with("index.bsk.tmp")),
        "{err:?}"
    );
    assert!(err.to_string().contains("index.bsk.tmp"));
    assert!(!missing.exists());
}

#[test]
fn index_without_sections_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.bsk");
    let meta = json!({"text": "x".repeat(10_000), "n": u64::MAX});
    write_index(&path, &meta, &[]).unwrap();
    let index = IndexFile::open(&path).unwrap();
    assert_eq!(index.meta(), &meta);
    assert_eq!(index.section_names().count(), 0);
}

#[test]
fn opening_a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.bsk");
    let err = IndexFile::open(&path).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }));
    assert!(err.to_string().contains("nope.bsk"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let _ = open_bytes(dir.path(), &bytes);
        let path = dir.path().join("damaged.bsk");
        let _ = IndexFile::open_unverified(&path);
    }

    /// Random bytes behind a valid magic and version, so parsing gets past the first checks.
    #[test]
    fn random_bytes_behind_the_magic_never_panic(
        rest in prop::collection::vec(any::<u8>(), 0..512),
        header_len in prop_oneof![Just(u64::MAX), Just(u64::MAX - 31), 0u64..600],
        total_len in prop_oneof![Just(u64::MAX), 0u64..1200],
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&header_len.to_le_bytes());
        bytes.extend_from_slice(&total_len.to_le_bytes());
        bytes.extend_from_slice(&rest);
        let dir = tempfile::tempdir().unwrap();
        prop_assert!(open_bytes(dir.path(), &bytes).is_err());
    }

    /// Headers with a valid checksum but arbitrary section tables: an error, or sections that lie
    /// inside the file, aligned and in order.
    #[test]
    fn arbitrary_section_tables_never_panic(
        table in prop::collection::vec(
            (
                0usize..3,
                prop_oneof![Just(u64::MAX), Just(u64::MAX - 63), Just(1u64 << 63), 0u64..700],
                prop_oneof![Just(u64::MAX), Just(u64::MAX - 255), 0u64..700],
            ),
            0..5,
        ),
        body_len in 0usize..700,
    ) {
        let sections: Vec<String> = table
            .iter()
            .map(|(name, offset, len)| {
                format!(r#"{{"name":"s{name}","offset":{offset},"len":{len},"xxh3":"{}"}}"#, hex(&[]))
            })
            .collect();
        let header = format!(r#"{{"meta":{{}},"sections":[{}]}}"#, sections.join(","));
        let bytes = raw_file(&header, &vec![0u8; body_len]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.bsk");
        fs::write(&path, &bytes).unwrap();
        if let Ok(index) = IndexFile::open_unverified(&path) {
            let mut prev_end = 0usize;
            for name in index.section_names() {
                let data = index.section(name).unwrap();
                let start = data.as_ptr() as usize;
                prop_assert_eq!(start % 64, 0);
                prop_assert!(start >= prev_end);
                prop_assert!(data.len() <= bytes.len());
                prev_end = start + data.len();
            }
        }
        let _ = IndexFile::open(&path);
    }

    /// Random damage to a valid file is an error unless it changed nothing.
    #[test]
    fn random_damage_is_detected(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let (_, bytes) = small_index(dir.path());
        let mut damaged = bytes.clone();
        for (at, value) in edits {
            let i = at.index(damaged.len());
            damaged[i] = value;
        }
        let result = open_bytes(dir.path(), &damaged);
        prop_assert_eq!(result.is_ok(), damaged == bytes);
    }

    /// Any meta and any set of section sizes round-trips.
    #[test]
    fn arbitrary_sections_round_trip(
        lens in prop::collection::vec(0usize..300, 0..6),
        text in ".{0,40}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bsk");
        let datas: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| random_bytes(n, i as u64)).collect();
        let names: Vec<String> = (0..datas.len()).map(|i| format!("s{i}")).collect();
        let sections: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(datas.iter().map(Vec::as_slice)).collect();
        let meta = json!({"text": text});
        write_index(&path, &meta, &sections).unwrap();
        let index = IndexFile::open(&path).unwrap();
        prop_assert_eq!(index.meta(), &meta);
        for (name, data) in sections {
            let got = index.section(name).unwrap();
            prop_assert_eq!(got, data);
            prop_assert_eq!(got.as_ptr() as usize % 64, 0);
        }
    }
}
