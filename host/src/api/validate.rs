//! Validates a command's params against the command's JSON Schema, with the framework's error
//! messages and data (`field`, `violation`, `expected`, `got`). The same schema is what
//! `/commands`, `/openapi.json` and `help` publish, so validation and documentation cannot
//! drift apart.
//!
//! Only the keywords our command schemas use are understood: `type`, `enum`, `minLength`,
//! `minimum`, `maximum`, `required`, `additionalProperties: false`. Job params (schemas that
//! jobs bring) are validated by the `jsonschema` crate in the queue.

use super::jsonrpc::{RpcError, codes};
use serde_json::{Value, json};

/// The Python spelling of a JSON value's type, as the framework reports `got`.
pub fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// A field's name as errors report it (`jobs[3].priority`): written only when an error is,
/// so that a valid batch of 10,000 jobs costs no string per field.
#[derive(Clone, Copy)]
struct Field<'a>(&'a str, &'a str);

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn list_repr(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// Validates `params` (already known to be an object or absent) against `schema`, and each
/// object in an array param whose schema has object `items` (the jobs of `add_jobs`) as
/// strictly: a field misspelt inside a batch's job refuses the batch, named with the job's
/// index (`jobs[3].priorty`), as the same field on a single add is refused.
pub fn validate(command: &str, schema: &Value, params: &Value) -> Result<(), RpcError> {
    validate_at(command, schema, params, "")
}

/// [`validate`] of an object found at `at` (`""` at the top, else `jobs[3].`), which prefixes
/// every field name an error reports.
fn validate_at(command: &str, schema: &Value, params: &Value, at: &str) -> Result<(), RpcError> {
    let empty = serde_json::Map::new();
    let obj = match params {
        Value::Object(o) => o,
        Value::Null => &empty,
        other if at.is_empty() => {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("Invalid params: params must be an object, got {}", py_type(other)),
            )
            .with_data(json!({"field": "params", "violation": "type", "expected": "object", "got": py_type(other)})));
        }
        other => {
            let field = at.trim_end_matches('.');
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("{command}: parameter '{field}' must be object, got {}", py_type(other)),
            )
            .with_data(json!({"field": field, "violation": "type", "expected": "object", "got": py_type(other)})));
        }
    };
    let props = schema.get("properties").and_then(Value::as_object);
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        let unknown: Vec<String> = obj
            .keys()
            .filter(|k| props.is_none_or(|p| !p.contains_key(k.as_str())))
            .map(|k| format!("{at}{k}"))
            .collect();
        if !unknown.is_empty() {
            let allowed: Vec<String> = props
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("Invalid parameters: {}. Allowed parameters: {}", unknown.join(", "), list_repr(&allowed)),
            )
            .with_data(json!({"invalid_parameters": unknown, "violation": "unknown", "allowed_parameters": allowed})));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        let missing: Vec<String> = required
            .iter()
            .filter_map(Value::as_str)
            .filter(|k| obj.get(*k).is_none_or(Value::is_null))
            .map(|k| format!("{at}{k}"))
            .collect();
        if !missing.is_empty() {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("Missing required parameters: {}", missing.join(", ")),
            )
            .with_data(json!({"missing_parameters": missing, "violation": "missing"})));
        }
    }
    let Some(props) = props else { return Ok(()) };
    for (key, prop) in props {
        let Some(v) = obj.get(key) else { continue };
        let name = Field(at, key);
        if let Some(t) = prop.get("type").and_then(Value::as_str)
            && !type_matches(t, v)
        {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!(
                    "{command}: parameter '{name}' must be {t}, got {}",
                    py_type(v)
                ),
            )
            .with_data(
                json!({"field": name, "violation": "type", "expected": t, "got": py_type(v)}),
            ));
        }
        if let Some(options) = prop.get("enum").and_then(Value::as_array)
            && !options.contains(v)
        {
            let names: Vec<String> = options
                .iter()
                .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
                .collect();
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("{command}: parameter '{name}' must be one of {}, got {}", list_repr(&names), value_repr(v)),
            )
            .with_data(json!({"field": name, "enum": options, "violation": "value", "expected": options, "got": v})));
        }
        if let (Some(min), Some(s)) = (prop.get("minLength").and_then(Value::as_u64), v.as_str())
            && (s.chars().count() as u64) < min
        {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
                format!("{command}: parameter '{name}' must be a non-empty string"),
            )
            .with_data(json!({"field": name, "violation": "value", "expected": "non-empty string", "got": v})));
        }
        if let Some(n) = v.as_f64() {
            let below = prop
                .get("minimum")
                .and_then(Value::as_f64)
                .filter(|m| n < *m);
            let above = prop
                .get("maximum")
                .and_then(Value::as_f64)
                .filter(|m| n > *m);
            if let Some(bound) = below.or(above) {
                let rel = if below.is_some() { ">=" } else { "<=" };
                return Err(RpcError::new(
                    codes::INVALID_PARAMS,
                    format!("{command}: parameter '{name}' must be {rel} {bound}, got {v}"),
                )
                .with_data(json!({"field": name, "violation": "value", "expected": format!("{rel} {bound}"), "got": v})));
            }
        }
        if let (Some(items), Some(list)) = (prop.get("items"), v.as_array())
            && items.get("type").and_then(Value::as_str) == Some("object")
        {
            for (i, item) in list.iter().enumerate() {
                validate_at(command, items, item, &format!("{name}[{i}]."))?;
            }
        }
    }
    Ok(())
}
