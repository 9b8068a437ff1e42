//! Vector input readers: round trips per format, and one test per bad input checking the error
//! variant and that the message names the file and the row or line.

use std::path::{Path, PathBuf};

use bitseek_index::input::{
    detect_format, read_vectors, read_vectors_as, validate, write_npy_f32, Checks, Format,
    InputError, Place, Vectors,
};
use half::f16;
use proptest::prelude::*;
use tempfile::TempDir;

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A `.npy` file by hand: magic, version, padded header dict, then `data`.
fn npy(major: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    npy_raw(major, &dict, data)
}

/// A `.npy` file with the header dict given verbatim.
fn npy_raw(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_owned();
    let prefix = if major == 1 { 10 } else { 12 };
    let unpadded = prefix + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    if major == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        out.extend((row.len() as i32).to_le_bytes());
        out.extend(f32_bytes(row));
    }
    out
}

/// The message names the file and, when given, the row or line.
#[track_caller]
fn assert_names(err: &InputError, path: &Path, place: Option<&str>) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    if let Some(place) = place {
        assert!(msg.contains(place), "message does not name {place}: {msg}");
    }
}

fn read_err(path: &Path) -> InputError {
    match read_vectors(path) {
        Ok(v) => panic!("expected an error reading {}, got {v:?}", path.display()),
        Err(e) => e,
    }
}

fn sample(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim).map(|i| i as f32 * 0.25 - 3.0).collect()
}

// ---------------------------------------------------------------------------------------------
// Formats and the Vectors helpers

#[test]
fn detect_format_by_extension() {
    let f = |name: &str| detect_format(Path::new(name));
    assert_eq!(f("a.npy").unwrap(), Format::Npy);
    assert_eq!(f("a.NPY").unwrap(), Format::Npy);
    assert_eq!(f("a.fvecs").unwrap(), Format::Fvecs);
    assert_eq!(f("a.jsonl").unwrap(), Format::JsonLines);
    assert_eq!(f("a.ndjson").unwrap(), Format::JsonLines);
    for name in ["a.csv", "a.json", "vectors"] {
        let err = f(name).unwrap_err();
        assert!(matches!(err, InputError::UnknownFormat { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains(".npy, .fvecs, .jsonl or .ndjson"), "{msg}");
    }
}

#[test]
fn vectors_helpers() {
    let v = Vectors {
        dim: 2,
        data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ids: None,
    };
    assert_eq!(v.rows(), 3);
    assert_eq!(v.row(1), &[3.0, 4.0]);
    assert_eq!(v.ids_or_rows(), vec![0, 1, 2]);
    let v = Vectors {
        ids: Some(vec![10, 20, 30]),
        ..v
    };
    assert_eq!(v.ids_or_rows(), vec![10, 20, 30]);
    let empty = Vectors {
        dim: 0,
        data: vec![],
        ids: None,
    };
    assert_eq!(empty.rows(), 0);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nope.npy");
    let err = read_err(&path);
    assert!(matches!(err, InputError::Io { .. }), "{err:?}");
    assert_names(&err, &path, None);
}

// ---------------------------------------------------------------------------------------------
// .npy

#[test]
fn npy_f32_round_trip() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("v.npy");
    let data = sample(5, 3);
    write_npy_f32(&path, 5, 3, &data).unwrap();
    // numpy aligns the data to 64 bytes; so do we.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes.len() - data.len() * 4) % 64, 0);
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.dim, 3);
    assert_eq!(v.rows(), 5);
    assert_eq!(v.data, data);
    assert_eq!(v.ids, None);
    validate(&v, &path, &Checks::default()).unwrap();
}

#[test]
fn write_npy_f32_refuses_a_wrong_length() {
    let dir = TempDir::new().unwrap();
    let err = write_npy_f32(&dir.path().join("v.npy"), 2, 3, &[0.0; 5]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn npy_f16_is_cast_to_f32() {
    let dir = TempDir::new().unwrap();
    let values = [0.5f32, -1.25, 3.0, 65504.0, 0.0, -0.0009765625];
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
        .collect();
    let path = write(&dir, "h.npy", &npy(1, "<f2", false, "(2, 3)", &bytes));
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.dim, 3);
    assert_eq!(v.data, values);
}

#[test]
fn npy_f16_spanning_several_conversion_blocks() {
    // The reader converts float16 a block of 2^20 values at a time; cross a block boundary.
    let dir = TempDir::new().unwrap();
    let (rows, dim) = (2100, 1000);
    let values: Vec<f32> = (0..rows * dim).map(|i| (i % 2048) as f32).collect();
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
        .collect();
    let shape = format!("({rows}, {dim})");
    let path = write(&dir, "h.npy", &npy(1, "<f2", false, &shape, &bytes));
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.rows(), rows);
    assert!(v.data == values, "float16 values differ after conversion");

    // And a cut-short float16 file reports bytes of float16 data.
    let path = write(&dir, "t.npy", &npy(1, "<f2", false, "(4, 2)", &[0; 10]));
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::Truncated {
                row: 2,
                expected: 16,
                found: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, Some("float16"));
}

#[test]
fn npy_versions_2_and_3() {
    let dir = TempDir::new().unwrap();
    let data = sample(2, 4);
    for major in [2, 3] {
        let path = write(
            &dir,
            &format!("v{major}.npy"),
            &npy(major, "<f4", false, "(2, 4)", &f32_bytes(&data)),
        );
        let v = read_vectors(&path).unwrap();
        assert_eq!((v.dim, &v.data), (4, &data), "version {major}");
    }
}

#[test]
fn npy_header_with_other_key_order_and_python2_longs() {
    let dir = TempDir::new().unwrap();
    let data = sample(2, 2);
    let dict = "{'shape': (2L, 2L), 'fortran_order': False, 'descr': \"<f4\"}";
    let path = write(&dir, "v.npy", &npy_raw(1, dict, &f32_bytes(&data)));
    assert_eq!(read_vectors(&path).unwrap().data, data);
}

#[test]
fn npy_fortran_order_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "f.npy", &npy(1, "<f4", true, "(2, 2)", &[0; 16]));
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyFortranOrder { .. }), "{err:?}");
    assert_names(&err, &path, Some("np.ascontiguousarray"));
}

#[test]
fn npy_other_dtypes_are_refused() {
    let dir = TempDir::new().unwrap();
    for (descr, name) in [
        ("<f8", "float64"),
        (">f4", "big-endian float32"),
        ("<i8", "int64"),
    ] {
        let path = write(&dir, "d.npy", &npy(1, descr, false, "(2, 2)", &[0; 32]));
        let err = read_err(&path);
        assert!(matches!(err, InputError::NpyDtype { .. }), "{err:?}");
        assert_names(&err, &path, Some(descr));
        let msg = err.to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("x.astype(np.float32)"), "{msg}");
    }
}

#[test]
fn npy_structured_dtype_is_refused() {
    let dir = TempDir::new().unwrap();
    let dict = "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }";
    let path = write(&dir, "s.npy", &npy_raw(1, dict, &[0; 16]));
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyDtype { .. }), "{err:?}");
    assert_names(&err, &path, Some("structured"));
}

#[test]
fn npy_1d_and_3d_shapes_are_refused() {
    let dir = TempDir::new().unwrap();
    for (shape, hint) in [
        ("(4,)", "x.reshape(1, -1)"),
        ("(2, 2, 1)", "x.reshape(-1, x.shape[-1])"),
        ("()", "(rows, dim)"),
    ] {
        let path = write(&dir, "s.npy", &npy(1, "<f4", false, shape, &[0; 16]));
        let err = read_err(&path);
        assert!(
            matches!(err, InputError::NpyShape { .. }),
            "{shape}: {err:?}"
        );
        assert_names(&err, &path, Some(hint));
        assert!(err.to_string().contains("2-D"), "{err}");
    }
}

#[test]
fn npy_zero_rows_and_zero_dim_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "z.npy", &npy(1, "<f4", false, "(0, 8)", &[]));
    let err = read_err(&path);
    assert!(matches!(err, InputError::NoRows { .. }), "{err:?}");
    assert_names(&err, &path, Some("(0, 8)"));

    let path = write(&dir, "d.npy", &npy(1, "<f4", false, "(3, 0)", &[]));
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyShape { .. }), "{err:?}");
    assert_names(&err, &path, Some("(3, 0)"));
}

#[test]
fn npy_truncated_data_says_expected_and_found() {
    let dir = TempDir::new().unwrap();
    // 3 rows x 4 dims = 48 bytes promised, 40 present: row 2 is cut short.
    let path = write(&dir, "t.npy", &npy(1, "<f4", false, "(3, 4)", &[0; 40]));
    let err = read_err(&path);
    match &err {
        InputError::Truncated {
            row,
            expected,
            found,
            ..
        } => assert_eq!((*row, *expected, *found), (2, 48, 40)),
        other => panic!("{other:?}"),
    }
    assert_names(&err, &path, Some("row 2"));
    let msg = err.to_string();
    assert!(msg.contains("48") && msg.contains("40"), "{msg}");
}

#[test]
fn npy_trailing_data_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "t.npy", &npy(1, "<f4", false, "(1, 2)", &[0; 12]));
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::TrailingData {
                expected: 8,
                found: 12,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, None);
}

#[test]
fn npy_bad_magic_and_bad_headers_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "m.npy", b"PK\x03\x04 this is a zip file");
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyMagic { .. }), "{err:?}");
    assert_names(&err, &path, Some("found \"PK\\x03\\x04 t\""));

    let mut bytes = npy(1, "<f4", false, "(1, 1)", &[0; 4]);
    bytes[6] = 9;
    let path = write(&dir, "v.npy", &bytes);
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyHeader { .. }), "{err:?}");
    assert_names(&err, &path, Some("version 9.0"));

    let bytes = npy(1, "<f4", false, "(1, 1)", &[0; 4]);
    let path = write(&dir, "h.npy", &bytes[..30]);
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyHeader { .. }), "{err:?}");
    assert_names(&err, &path, Some("ends inside the header"));

    let dict = "{'descr': '<f4', 'fortran_order': False, 'shope': (1, 1), }";
    let path = write(&dir, "k.npy", &npy_raw(1, dict, &[0; 4]));
    let err = read_err(&path);
    assert!(matches!(err, InputError::NpyHeader { .. }), "{err:?}");
    assert_names(&err, &path, Some("'shape'"));
}

#[test]
fn npy_empty_file() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "e.npy", b"");
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::Empty {
                format: Format::Npy,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, Some("empty"));
}

// ---------------------------------------------------------------------------------------------
// .fvecs

#[test]
fn fvecs_round_trip() {
    let dir = TempDir::new().unwrap();
    let rows: [&[f32]; 3] = [&[1.0, 2.0, 3.0], &[-4.0, 5.5, 0.0], &[7.0, 8.0, 9.0]];
    let path = write(&dir, "v.fvecs", &fvecs(&rows));
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.dim, 3);
    assert_eq!(v.rows(), 3);
    assert_eq!(v.row(1), rows[1]);
    assert_eq!(v.ids, None);
}

#[test]
fn fvecs_ragged_row_names_row_and_both_dims() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "r.fvecs",
        &fvecs(&[&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &[1.0, 2.0]]),
    );
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::Ragged {
                at: Place::Row(2),
                found: 2,
                expected: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(
        &err,
        &path,
        Some("row 2 has dimension 2 but row 0 has dimension 3"),
    );
}

#[test]
fn fvecs_truncated_last_row() {
    let dir = TempDir::new().unwrap();
    let mut bytes = fvecs(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]]);
    bytes.truncate(bytes.len() - 5);
    let path = write(&dir, "t.fvecs", &bytes);
    let err = read_err(&path);
    match &err {
        InputError::Truncated {
            row,
            expected,
            found,
            ..
        } => assert_eq!((*row, *expected, *found), (1, 16, 11)),
        other => panic!("{other:?}"),
    }
    assert_names(&err, &path, Some("row 1"));

    // Cut inside a dimension field.
    let mut bytes = fvecs(&[&[1.0], &[2.0]]);
    bytes.truncate(10);
    let path = write(&dir, "t2.fvecs", &bytes);
    let err = read_err(&path);
    assert!(
        matches!(err, InputError::Truncated { row: 1, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("row 1"));
}

#[test]
fn fvecs_huge_garbage_dimension_is_truncation_not_allocation() {
    let dir = TempDir::new().unwrap();
    let mut bytes = i32::MAX.to_le_bytes().to_vec();
    bytes.extend([0; 8]);
    let path = write(&dir, "g.fvecs", &bytes);
    let err = read_err(&path);
    assert!(
        matches!(err, InputError::Truncated { row: 0, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("row 0"));
}

#[test]
fn fvecs_empty_file() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "e.fvecs", b"");
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::Empty {
                format: Format::Fvecs,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, Some("empty"));
}

#[test]
fn fvecs_non_positive_dimension() {
    let dir = TempDir::new().unwrap();
    for d in [0i32, -3] {
        let mut bytes = fvecs(&[&[1.0, 2.0]]);
        bytes.extend(d.to_le_bytes());
        bytes.extend([0; 8]);
        let path = write(&dir, "n.fvecs", &bytes);
        let err = read_err(&path);
        assert!(
            matches!(err, InputError::BadDimension { row: 1, found, .. } if found == i64::from(d)),
            "{err:?}"
        );
        assert_names(&err, &path, Some("row 1"));
        assert!(err.to_string().contains(&d.to_string()));
    }
}

// ---------------------------------------------------------------------------------------------
// JSON lines

#[test]
fn jsonl_round_trip_with_ids() {
    let dir = TempDir::new().unwrap();
    let text = "{\"id\": 7, \"vector\": [1, 2.5, -3e2]}\n\n   \n{\"vector\": [4, 5, 6], \"id\": 9, \"meta\": {\"x\": 1}}\r\n";
    let path = write(&dir, "v.jsonl", text.as_bytes());
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.dim, 3);
    assert_eq!(v.data, vec![1.0, 2.5, -300.0, 4.0, 5.0, 6.0]);
    assert_eq!(v.ids, Some(vec![7, 9]));
    assert_eq!(v.ids_or_rows(), vec![7, 9]);
}

#[test]
fn jsonl_round_trip_without_ids_and_ndjson() {
    let dir = TempDir::new().unwrap();
    let text = "\u{feff}{\"vector\": [1, 2]}\n{\"vector\": [3, 4]}";
    let path = write(&dir, "v.ndjson", text.as_bytes());
    let v = read_vectors(&path).unwrap();
    assert_eq!(v.data, vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(v.ids, None);
    assert_eq!(v.ids_or_rows(), vec![0, 1]);
}

#[test]
fn read_vectors_as_ignores_the_extension() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "v.txt", b"{\"vector\": [1, 2]}\n");
    let v = read_vectors_as(&path, Format::JsonLines).unwrap();
    assert_eq!(v.data, vec![1.0, 2.0]);
}

#[test]
fn jsonl_invalid_json_names_the_line() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "bad.jsonl",
        b"{\"vector\": [1, 2]}\n\n{\"vector\": [1, 2}\n",
    );
    let err = read_err(&path);
    assert!(matches!(err, InputError::Json { line: 3, .. }), "{err:?}");
    assert_names(&err, &path, Some("line 3"));
}

#[test]
fn jsonl_missing_vector() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "m.jsonl",
        b"{\"vector\": [1]}\n{\"id\": 3, \"vec\": [1]}\n",
    );
    let err = read_err(&path);
    assert!(
        matches!(err, InputError::MissingVector { line: 2, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("line 2"));
}

#[test]
fn jsonl_non_numeric_entries() {
    let dir = TempDir::new().unwrap();
    for (entry, shown) in [("\"0.5\"", "\"0.5\""), ("null", "null"), ("[1]", "[1]")] {
        let text = format!("{{\"vector\": [1, 2]}}\n{{\"vector\": [1, {entry}]}}\n");
        let path = write(&dir, "n.jsonl", text.as_bytes());
        let err = read_err(&path);
        assert!(
            matches!(
                err,
                InputError::NotANumber {
                    line: 2,
                    index: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &path, Some("line 2"));
        assert!(err.to_string().contains(shown), "{err}");
    }
}

#[test]
fn jsonl_bad_records() {
    let dir = TempDir::new().unwrap();
    for (line, needle) in [
        ("[1, 2]", "an array"),
        ("{\"vector\": \"1,2\"}", "expected an array"),
        ("{\"vector\": []}", "empty"),
        ("{\"id\": -1, \"vector\": [1]}", "\"id\" is -1"),
        ("{\"id\": \"a\", \"vector\": [1]}", "non-negative integer"),
    ] {
        let path = write(&dir, "b.jsonl", format!("\n{line}\n").as_bytes());
        let err = read_err(&path);
        assert!(
            matches!(err, InputError::BadRecord { line: 2, .. }),
            "{line}: {err:?}"
        );
        assert_names(&err, &path, Some("line 2"));
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn jsonl_ragged_rows() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "r.jsonl",
        b"\n{\"vector\": [1, 2, 3]}\n{\"vector\": [1, 2]}\n",
    );
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::Ragged {
                at: Place::Line(3),
                found: 2,
                first: Place::Line(2),
                expected: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(
        &err,
        &path,
        Some("line 3 has dimension 2 but line 2 has dimension 3"),
    );
}

#[test]
fn jsonl_ids_on_some_lines_only() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "i.jsonl",
        b"{\"id\": 1, \"vector\": [1]}\n{\"vector\": [2]}\n",
    );
    let err = read_err(&path);
    assert!(
        matches!(
            err,
            InputError::MixedIds {
                line: 2,
                first_line: 1,
                line_has_id: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, Some("line 2 has no \"id\" but line 1 has one"));

    let path = write(
        &dir,
        "j.jsonl",
        b"{\"vector\": [1]}\n{\"id\": 1, \"vector\": [2]}\n",
    );
    let err = read_err(&path);
    assert_names(
        &err,
        &path,
        Some("line 2 has an \"id\" but line 1 has none"),
    );
}

#[test]
fn jsonl_empty_file_and_blank_only_file() {
    let dir = TempDir::new().unwrap();
    for (name, text) in [("e.jsonl", ""), ("b.jsonl", "\n  \n\r\n")] {
        let path = write(&dir, name, text.as_bytes());
        let err = read_err(&path);
        assert!(
            matches!(
                err,
                InputError::Empty {
                    format: Format::JsonLines,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_names(&err, &path, Some("empty"));
    }
}

#[test]
fn jsonl_overflow_to_inf_is_caught_by_validate() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "o.jsonl",
        b"{\"id\": 5, \"vector\": [1, 2]}\n{\"id\": 6, \"vector\": [1, -1e39]}\n",
    );
    let v = read_vectors(&path).unwrap();
    let err = validate(&v, &path, &Checks::default()).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::NonFinite {
                row: 1,
                column: 1,
                id: Some(6),
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &path, Some("row 1 (id 6), column 1 is -inf"));
}

// ---------------------------------------------------------------------------------------------
// validate

fn vectors(dim: usize, data: Vec<f32>, ids: Option<Vec<u64>>) -> Vectors {
    Vectors { dim, data, ids }
}

#[test]
fn validate_accepts_good_vectors() {
    let v = vectors(2, vec![1.0, 0.0, 0.0, 0.0], Some(vec![1, 2]));
    let checks = Checks {
        expected_dim: Some(2),
        reject_zero: false,
    };
    validate(&v, Path::new("v.npy"), &checks).unwrap();
}

#[test]
fn validate_nan_names_row_and_column() {
    let path = Path::new("data/v.npy");
    let v = vectors(3, vec![1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0], None);
    let err = validate(&v, path, &Checks::default()).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::NonFinite {
                row: 1,
                column: 1,
                id: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, path, Some("row 1, column 1 is NaN"));
}

#[test]
fn validate_zero_vectors_only_for_cosine() {
    let path = Path::new("v.fvecs");
    let v = vectors(2, vec![1.0, 2.0, 0.0, -0.0, 3.0, 4.0], None);
    validate(&v, path, &Checks::default()).unwrap();
    let cosine = Checks {
        expected_dim: None,
        reject_zero: true,
    };
    let err = validate(&v, path, &cosine).unwrap_err();
    assert!(
        matches!(err, InputError::ZeroVector { row: 1, .. }),
        "{err:?}"
    );
    assert_names(&err, path, Some("drop row 1 or use --metric dot/l2"));
    assert!(err.to_string().contains("cosine needs non-zero vectors"));

    // So tiny that its squared norm underflows: as unusable for cosine as an exact zero.
    let v = vectors(2, vec![1.0, 2.0, 1e-30, 0.0], None);
    let err = validate(&v, path, &cosine).unwrap_err();
    assert!(
        matches!(err, InputError::ZeroVector { row: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn validate_dimension_mismatch() {
    let path = Path::new("v.npy");
    let v = vectors(3, vec![1.0; 6], None);
    let checks = Checks {
        expected_dim: Some(384),
        reject_zero: false,
    };
    let err = validate(&v, path, &checks).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::DimMismatch {
                expected: 384,
                found: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, path, Some("dimension 3"));
    assert!(err.to_string().contains("384"));
}

#[test]
fn validate_duplicate_ids_name_both_rows() {
    let path = Path::new("v.jsonl");
    let v = vectors(1, vec![1.0, 2.0, 3.0, 4.0], Some(vec![10, 11, 12, 11]));
    let err = validate(&v, path, &Checks::default()).unwrap_err();
    assert!(
        matches!(
            err,
            InputError::DuplicateId {
                id: 11,
                first_row: 1,
                second_row: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, path, Some("id 11 appears in row 1 and row 3"));
}

#[test]
fn validate_no_rows() {
    let path = Path::new("v.npy");
    for v in [vectors(4, vec![], None), vectors(0, vec![], None)] {
        let err = validate(&v, path, &Checks::default()).unwrap_err();
        assert!(matches!(err, InputError::NoRows { .. }), "{err:?}");
        assert_names(&err, path, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn npy_and_fvecs_round_trip_any_shape(
        rows in 1usize..20,
        dim in 1usize..40,
        seed in any::<u32>(),
    ) {
        let dir = TempDir::new().unwrap();
        let data: Vec<f32> = (0..rows * dim)
            .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / 1e6 - 2000.0)
            .collect();

        let npy_path = dir.path().join("v.npy");
        write_npy_f32(&npy_path, rows, dim, &data).unwrap();
        let v = read_vectors(&npy_path).unwrap();
        prop_assert_eq!((v.dim, v.rows()), (dim, rows));
        prop_assert_eq!(&v.data, &data);

        let chunks: Vec<&[f32]> = data.chunks(dim).collect();
        let fvecs_path = write(&dir, "v.fvecs", &fvecs(&chunks));
        let v = read_vectors(&fvecs_path).unwrap();
        prop_assert_eq!((v.dim, v.rows()), (dim, rows));
        prop_assert_eq!(&v.data, &data);
    }
}

#[test]
fn readers_take_bytes_or_a_reader_as_well_as_a_path() {
    use bitseek_index::input::{read_vectors_from, read_vectors_from_bytes, write_npy_f32_to};
    let dir = TempDir::new().unwrap();
    let data = sample(3, 4);
    let mut npy_bytes = Vec::new();
    write_npy_f32_to(&mut npy_bytes, 3, 4, &data).unwrap();
    let rows: Vec<&[f32]> = data.chunks(4).collect();
    let jsonl = "{\"id\": 7, \"vector\": [1, 2]}\n{\"id\": 9, \"vector\": [3, 4]}\n";
    let cases = [
        ("a.npy", Format::Npy, npy_bytes.clone()),
        ("a.fvecs", Format::Fvecs, fvecs(&rows)),
        ("a.jsonl", Format::JsonLines, jsonl.as_bytes().to_vec()),
    ];
    for (name, format, bytes) in cases {
        let path = write(&dir, name, &bytes);
        let from_path = read_vectors(&path).unwrap();
        assert_eq!(
            read_vectors_from_bytes(&bytes, format, &path).unwrap(),
            from_path
        );
        // A reader of unknown length (a pipe, say) reads the same.
        assert_eq!(
            read_vectors_from(&bytes[..], None, format, &path).unwrap(),
            from_path
        );
    }

    // Bad input gives the same error, labelled with the name given.
    let cut = &npy_bytes[..npy_bytes.len() - 3];
    let path = write(&dir, "cut.npy", cut);
    let from_path = read_err(&path);
    let from_bytes = read_vectors_from_bytes(cut, Format::Npy, &path).unwrap_err();
    assert!(
        matches!(from_bytes, InputError::Truncated { row: 2, .. }),
        "{from_bytes}"
    );
    assert_eq!(from_bytes.to_string(), from_path.to_string());
    let from_reader = read_vectors_from(cut, None, Format::Npy, &path).unwrap_err();
    assert!(
        matches!(from_reader, InputError::Truncated { row: 2, .. }),
        "{from_reader}"
    );
}
