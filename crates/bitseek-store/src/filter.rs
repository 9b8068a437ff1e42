//! Payload filters: which rows a search may return, decided per row before the scan ranks it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Payload filter evaluated inside the scan. JSON: `{"field": "lang", "eq": "rust"}`,
/// `{"field": "lang", "in": ["rust", "go"]}`, or `{"all": [filter, ...]}` for a conjunction.
///
/// `field` names a top-level key of the payload object, or a path through nested objects with
/// dots (`"repo.lang"`). A row whose payload lacks the field never passes. Values compare as JSON
/// (so `1` and `1.0` are equal numbers, `"1"` is a string).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged, deny_unknown_fields)]
pub enum Filter {
    /// The field's value equals `eq`.
    Eq {
        /// The payload field (a key, or a dotted path).
        field: String,
        /// The value it must equal.
        eq: Value,
    },
    /// The field's value equals one of `in`.
    In {
        /// The payload field (a key, or a dotted path).
        field: String,
        /// The values it may equal.
        r#in: Vec<Value>,
    },
    /// Every filter in `all` passes (an empty list passes everything).
    All {
        /// The filters that must all pass.
        all: Vec<Filter>,
    },
}

/// Largest nesting of `all` accepted, so a hostile filter cannot exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Why a filter was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A field name is the empty string.
    #[error("filter field name is empty")]
    EmptyField,
    /// `all` nests deeper than [`MAX_DEPTH`].
    #[error("filter nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Filter {
    /// Refuses filters that cannot mean anything: empty field names, too deep nesting.
    pub fn validate(&self) -> Result<(), FilterError> {
        self.validate_at(0)
    }

    fn validate_at(&self, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        match self {
            Filter::Eq { field, .. } | Filter::In { field, .. } if field.is_empty() => {
                Err(FilterError::EmptyField)
            }
            Filter::All { all } => all.iter().try_for_each(|f| f.validate_at(depth + 1)),
            _ => Ok(()),
        }
    }

    /// Whether `payload` passes.
    pub fn accepts(&self, payload: &Value) -> bool {
        match self {
            Filter::Eq { field, eq } => lookup(payload, field).is_some_and(|v| json_eq(v, eq)),
            Filter::In { field, r#in } => {
                lookup(payload, field).is_some_and(|v| r#in.iter().any(|w| json_eq(v, w)))
            }
            Filter::All { all } => all.iter().all(|f| f.accepts(payload)),
        }
    }
}

/// The value at `field` of `payload`: a top-level key, or a dotted path through nested objects.
pub fn lookup<'a>(payload: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(v) = payload.get(field) {
        return Some(v);
    }
    let mut v = payload;
    for part in field.split('.') {
        v = v.get(part)?;
    }
    Some(v)
}

/// JSON equality with numbers compared by value (`1 == 1.0`): equal exactly when the keys are.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => value_key(a) == value_key(b),
        // Same answer as comparing keys (compact JSON of equal values is equal), without
        // formatting two strings per row.
        _ => a == b,
    }
}

/// A string that two JSON values share exactly when a filter counts them equal: integers and
/// integral floats by their integer value, other floats by their bits, everything else by its
/// compact JSON. Segments index payload fields by it, so a filter costs a lookup per value
/// instead of a JSON comparison per row.
pub fn value_key(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                format!("i{i}")
            } else if let Some(u) = n.as_u64() {
                format!("i{u}")
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 1.8e19 {
                    format!("i{}", f as i128)
                } else {
                    format!("f{:016x}", f.to_bits())
                }
            }
        }
        other => format!("j{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn json_shapes_parse_to_the_right_variant() {
        assert!(matches!(
            parse(json!({"field": "lang", "eq": "rust"})),
            Filter::Eq { .. }
        ));
        assert!(matches!(
            parse(json!({"field": "lang", "in": ["rust", "go"]})),
            Filter::In { .. }
        ));
        assert!(matches!(
            parse(json!({"all": [{"field": "a", "eq": 1}]})),
            Filter::All { .. }
        ));
        assert!(serde_json::from_value::<Filter>(json!({"field": "a"})).is_err());
        assert!(serde_json::from_value::<Filter>(json!({"field": "a", "ne": 1})).is_err());
    }

    #[test]
    fn accepts_by_field_value_and_path() {
        let p = json!({"lang": "rust", "stars": 3, "repo": {"owner": "x"}});
        assert!(parse(json!({"field": "lang", "eq": "rust"})).accepts(&p));
        assert!(!parse(json!({"field": "lang", "eq": "go"})).accepts(&p));
        assert!(parse(json!({"field": "stars", "eq": 3.0})).accepts(&p));
        assert!(!parse(json!({"field": "stars", "eq": 3.5})).accepts(&p));
        assert!(parse(json!({"field": "x", "eq": 0.25})).accepts(&json!({"x": 0.25})));
        assert!(parse(json!({"field": "x", "eq": u64::MAX})).accepts(&json!({"x": u64::MAX})));
        assert!(parse(json!({"field": "x", "eq": -3})).accepts(&json!({"x": -3.0})));
        assert!(parse(json!({"field": "x", "eq": {"a": [1, "b"]}}))
            .accepts(&json!({"x": {"a": [1, "b"]}})));
        assert!(!parse(json!({"field": "x", "eq": "1"})).accepts(&json!({"x": 1})));
        assert!(!parse(json!({"field": "stars", "eq": "3"})).accepts(&p));
        assert!(parse(json!({"field": "lang", "in": ["go", "rust"]})).accepts(&p));
        assert!(!parse(json!({"field": "lang", "in": []})).accepts(&p));
        assert!(parse(json!({"field": "repo.owner", "eq": "x"})).accepts(&p));
        assert!(!parse(json!({"field": "missing", "eq": null})).accepts(&p));
        assert!(!parse(json!({"field": "lang", "eq": "rust"})).accepts(&json!(null)));
        let both = parse(json!({"all": [
            {"field": "lang", "eq": "rust"}, {"field": "stars", "in": [1, 2, 3]}
        ]}));
        assert!(both.accepts(&p));
        assert!(!both.accepts(&json!({"lang": "rust", "stars": 4})));
        assert!(parse(json!({"all": []})).accepts(&p));
    }

    #[test]
    fn validation_refuses_empty_fields_and_deep_nesting() {
        assert!(parse(json!({"field": "", "eq": 1})).validate().is_err());
        let mut f = parse(json!({"field": "a", "eq": 1}));
        for _ in 0..40 {
            f = Filter::All { all: vec![f] };
        }
        assert!(f.validate().is_err());
        assert!(parse(json!({"all": [{"field": "a", "eq": 1}]}))
            .validate()
            .is_ok());
    }
}
