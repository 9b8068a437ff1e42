//! JSON lines (`.jsonl`, `.ndjson`): one `{"id": 7, "vector": [..]}` object per line. Lines that
//! fail the fast typed parse are parsed again loosely, to say which part is wrong.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;

use super::{Format, InputError, Place, Vectors};

/// The fast path: most lines parse straight into this; only failures get a closer look.
#[derive(Deserialize)]
struct Record {
    id: Option<u64>,
    vector: Vec<f32>,
}

/// Reads JSON lines; blank lines are skipped and a UTF-8 byte-order mark is allowed.
pub(super) fn read_jsonl(file: impl Read, path: &Path) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut data: Vec<f32> = Vec::new();
    let mut ids: Vec<u64> = Vec::new();
    // (line, has id, dimension) of the first vector, which every later one must match.
    let mut first: Option<(usize, bool, usize)> = None;
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        line += 1;
        let mut text = buf.trim_ascii();
        if line == 1 {
            text = text
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(text)
                .trim_ascii();
        }
        if text.is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_slice(text) {
            Ok(rec) => rec,
            Err(e) => return Err(diagnose_json_line(path, line, text, e)),
        };
        let dim = record.vector.len();
        if dim == 0 {
            return Err(InputError::BadRecord {
                path: path.to_owned(),
                line,
                reason: "\"vector\" is empty".to_owned(),
            });
        }
        let has_id = record.id.is_some();
        match first {
            None => first = Some((line, has_id, dim)),
            Some((first_line, first_has_id, first_dim)) => {
                if dim != first_dim {
                    return Err(InputError::Ragged {
                        path: path.to_owned(),
                        at: Place::Line(line),
                        found: dim,
                        first: Place::Line(first_line),
                        expected: first_dim,
                    });
                }
                if has_id != first_has_id {
                    return Err(InputError::MixedIds {
                        path: path.to_owned(),
                        line,
                        first_line,
                        line_has_id: has_id,
                    });
                }
            }
        }
        data.extend_from_slice(&record.vector);
        if let Some(id) = record.id {
            ids.push(id);
        }
    }
    let Some((_, has_ids, dim)) = first else {
        return Err(InputError::Empty {
            path: path.to_owned(),
            format: Format::JsonLines,
        });
    };
    Ok(Vectors {
        dim,
        data,
        ids: has_ids.then_some(ids),
    })
}

/// Works out why a line did not parse as a [`Record`], for a message that says which part is wrong.
fn diagnose_json_line(path: &Path, line: usize, text: &[u8], err: serde_json::Error) -> InputError {
    let bad_record = |reason: String| InputError::BadRecord {
        path: path.to_owned(),
        line,
        reason,
    };
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            // serde_json appends " at line 1 column N"; the line is ours and the column is a field.
            let reason = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m);
            return InputError::Json {
                path: path.to_owned(),
                line,
                column: e.column(),
                reason: reason.to_owned(),
            };
        }
    };
    let Some(obj) = value.as_object() else {
        return bad_record(format!("found {}", json_kind(&value)));
    };
    if let Some(id) = obj.get("id") {
        if !id.is_null() && id.as_u64().is_none() {
            return bad_record(format!(
                "\"id\" is {}; expected a non-negative integer",
                short_json(id)
            ));
        }
    }
    let Some(vector) = obj.get("vector") else {
        return InputError::MissingVector {
            path: path.to_owned(),
            line,
        };
    };
    let Some(items) = vector.as_array() else {
        return bad_record(format!(
            "\"vector\" is {}; expected an array of numbers",
            json_kind(vector)
        ));
    };
    if let Some((index, item)) = items.iter().enumerate().find(|(_, v)| !v.is_number()) {
        return InputError::NotANumber {
            path: path.to_owned(),
            line,
            index,
            found: short_json(item),
        };
    }
    bad_record(err.to_string())
}

fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "an object".to_owned(),
        serde_json::Value::Array(_) => "an array".to_owned(),
        other => short_json(other),
    }
}

/// A JSON value as text, cut short so one bad entry cannot flood the terminal.
fn short_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}…")
    } else {
        s
    }
}
