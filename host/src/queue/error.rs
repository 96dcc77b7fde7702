//! The queue's domain errors: what a caller did that the queue refuses, each with the data a
//! client needs to act on it. The API maps them onto the framework's envelopes.

use crate::job::Status;
use crate::store::StoreError;

/// Why the queue refused an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// No job with this id.
    #[error("Job with ID '{0}' not found")]
    NotFound(String),
    /// A (not deleted) job with this id exists.
    #[error("Job with ID '{0}' already exists")]
    AlreadyExists(String),
    /// The job is in a state that does not allow the action.
    #[error("Cannot {action} job '{job_id}' in state '{}'{}", current.as_str(), if *waiting { " (already started, waiting for a free slot)" } else { "" })]
    StateInvalid {
        /// The job.
        job_id: String,
        /// `start` or `stop`.
        action: &'static str,
        /// Its status now.
        current: Status,
        /// Started and waiting for a slot.
        waiting: bool,
        /// The statuses that allow the action.
        allowed: Vec<Status>,
    },
    /// `job_type` names no loaded job.
    #[error("Unknown job type '{job_type}'")]
    UnknownJobType {
        /// What was asked for.
        job_type: String,
        /// What is loaded.
        available: Vec<String>,
    },
    /// The job type's file is being compiled (a new or large component); retry shortly.
    #[error("job type '{0}' is still loading (compiling its component); try again shortly")]
    JobTypeLoading(String),
    /// No `job_type` given and no default configured.
    #[error("job_type is required (no default job type is configured)")]
    NoJobType {
        /// What is loaded.
        available: Vec<String>,
    },
    /// A param is invalid (the job's params schema or the command's own rules).
    #[error("{}", .0.message)]
    InvalidParams(Box<ParamError>),
    /// The store could not make the transition durable (the journal or the database refused
    /// it); nothing changed.
    #[error("{0}")]
    Registry(#[source] StoreError),
    /// The host is shutting down.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The job store cannot be reached (a database down); nothing changed.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The job store was lost while it committed the change, and did not come back in time to
    /// say whether the commit was made.
    #[error("{0}")]
    StoreOutcomeUnknown(String),
    /// No schedule with this name.
    #[error("Schedule '{0}' not found")]
    ScheduleNotFound(String),
    /// A schedule with this name exists.
    #[error("Schedule '{0}' already exists")]
    ScheduleExists(String),
    /// A schedule declared in a manifest is changed by its manifest only.
    #[error(
        "Schedule '{name}' is declared in the manifest of job type '{job_type}': change it there"
    )]
    ScheduleInManifest {
        /// The schedule.
        name: String,
        /// The job type whose manifest declares it.
        job_type: String,
    },
    /// No queue of this name has settings, jobs or a job type.
    #[error("Queue '{0}' not found")]
    QueueNotFound(String),
    /// The caller's key may not do this to this job: outside its scope, or a delete of a job
    /// it did not add. Nothing changed.
    #[error("{message}")]
    Forbidden {
        /// The key's name.
        key: String,
        /// What it lacks, in words (names the key, the job and the scope or owner).
        message: String,
    },
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => QueueError::NotFound(id),
            StoreError::AlreadyExists(id) => QueueError::AlreadyExists(id),
            StoreError::StateInvalid {
                job_id,
                action,
                current,
                waiting,
                allowed,
            } => QueueError::StateInvalid {
                job_id,
                action,
                current,
                waiting,
                allowed,
            },
            StoreError::UnknownDependency { job_id, dependency } => {
                QueueError::InvalidParams(Box::new(ParamError {
                    field: "depends_on".into(),
                    violation: "value",
                    expected: "ids of existing jobs (or, in add_flow, keys of the flow)".into(),
                    got: dependency.clone().into(),
                    message: format!(
                        "parameter 'depends_on': job '{job_id}' depends on '{dependency}', which does not exist"
                    ),
                }))
            }
            StoreError::DuplicateInBatch { index, job_id } => {
                QueueError::InvalidParams(Box::new(ParamError {
                    field: format!("jobs[{index}].job_id"),
                    violation: "value",
                    expected: "a job_id not used earlier in the batch".into(),
                    got: job_id.clone().into(),
                    message: format!(
                        "parameter 'jobs[{index}].job_id' repeats '{job_id}' from earlier in the batch"
                    ),
                }))
            }
            e @ (StoreError::Journal(_)
            | StoreError::Database { .. }
            | StoreError::Record(_)
            | StoreError::Config(_)
            | StoreError::RunLost(_)) => QueueError::Registry(e),
            StoreError::Unavailable { reason, .. } => QueueError::StoreUnavailable(reason),
            StoreError::OutcomeUnknown { reason, .. } => QueueError::StoreOutcomeUnknown(reason),
            StoreError::Closed => QueueError::ShuttingDown,
            StoreError::ScheduleExists(name) => QueueError::ScheduleExists(name),
        }
    }
}

/// One invalid param.
#[derive(Debug, Clone)]
pub struct ParamError {
    /// Dotted path of the offending field, e.g. `params.duration`.
    pub field: String,
    /// `value` or `missing`.
    pub violation: &'static str,
    /// What was expected.
    pub expected: serde_json::Value,
    /// What was given.
    pub got: serde_json::Value,
    /// Human-readable message.
    pub message: String,
}

/// The JSON type name of a value, as JSON Schema spells it.
pub fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl QueueError {
    /// The same param error, named as item `index` of an `add_jobs` batch (`jobs[3].params.x`).
    pub fn in_batch(self, index: usize) -> Self {
        match self {
            QueueError::InvalidParams(mut p) => {
                let field = format!("jobs[{index}].{}", p.field);
                p.message = p
                    .message
                    .replacen(&format!("'{}'", p.field), &format!("'{field}'"), 1);
                p.field = field;
                QueueError::InvalidParams(p)
            }
            other => other,
        }
    }

    pub(crate) fn invalid_job_id() -> Self {
        QueueError::InvalidParams(Box::new(ParamError {
            field: "job_id".into(),
            violation: "value",
            expected: "non-empty string".into(),
            got: "".into(),
            message: "parameter 'job_id' must be a non-empty string".into(),
        }))
    }

    /// Maps the first violation of a job's params schema (`schema`) to an error naming
    /// `params.<path>`, in the framework's shape: `violation` is `value` for a wrong type or an
    /// unknown key (as the framework reports job params), `missing` for a required one.
    pub fn from_schema_error(
        err: &jsonschema::ValidationError<'_>,
        schema: &serde_json::Value,
    ) -> Self {
        use jsonschema::error::ValidationErrorKind as K;
        let path = err.instance_path().to_string();
        let mut field = String::from("params");
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            field.push('.');
            field.push_str(seg);
        }
        let instance: &serde_json::Value = err.instance().as_ref();
        let got = serde_json::Value::String(json_type(instance).into());
        match err.kind() {
            K::AdditionalProperties { unexpected } => {
                let key = unexpected.first().cloned().unwrap_or_default();
                let got = instance.get(&key).map_or("null", json_type);
                let field = format!("{field}.{key}");
                // The object schema that refused the key: the parent of its
                // `additionalProperties` keyword.
                let keyword = err.schema_path().to_string();
                let parent = keyword.rsplit_once('/').map_or("", |(p, _)| p);
                let allowed: Vec<&str> = schema
                    .pointer(parent)
                    .and_then(|s| s.get("properties"))
                    .and_then(serde_json::Value::as_object)
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                QueueError::InvalidParams(Box::new(ParamError {
                    message: format!("parameter '{field}' is not an allowed key"),
                    field,
                    violation: "value",
                    expected: format!("no such key; allowed: {}", allowed.join(", ")).into(),
                    got: got.into(),
                }))
            }
            K::Required { property } => {
                let name = property
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| property.to_string());
                let field = format!("{field}.{name}");
                QueueError::InvalidParams(Box::new(ParamError {
                    message: format!("parameter '{field}' is required"),
                    field,
                    violation: "missing",
                    expected: "present".into(),
                    got: serde_json::Value::Null,
                }))
            }
            K::Type { kind } => {
                let expected = match kind {
                    jsonschema::error::TypeKind::Single(t) => t.to_string(),
                    jsonschema::error::TypeKind::Multiple(set) => format!("{set:?}"),
                };
                QueueError::InvalidParams(Box::new(ParamError {
                    message: format!(
                        "parameter '{field}' must be {expected}, got {}",
                        json_type(instance)
                    ),
                    field,
                    violation: "value",
                    expected: expected.into(),
                    got,
                }))
            }
            _ => QueueError::InvalidParams(Box::new(ParamError {
                message: format!("parameter '{field}' is invalid: {err}"),
                field,
                violation: "value",
                expected: serde_json::Value::String(err.to_string()),
                got: instance.clone(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first_error(schema: &serde_json::Value, params: &serde_json::Value) -> ParamError {
        let v = jsonschema::validator_for(schema).expect("schema");
        let err = v.iter_errors(params).next().expect("invalid params");
        match QueueError::from_schema_error(&err, schema) {
            QueueError::InvalidParams(p) => *p,
            other => panic!("not a param error: {other}"),
        }
    }

    #[test]
    fn an_unknown_nested_key_lists_the_keys_its_own_object_allows() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "integer"},
            "opts": {"type": "object", "properties": {"x": {}, "y": {}}, "additionalProperties": false},
        }, "additionalProperties": false});
        let p = first_error(&schema, &json!({"opts": {"z": "s"}}));
        assert_eq!(p.field, "params.opts.z");
        assert_eq!(p.violation, "value");
        assert_eq!(p.expected, json!("no such key; allowed: x, y"));
        assert_eq!(p.got, json!("string"));
        let p = first_error(&schema, &json!({"b": [1]}));
        assert_eq!(
            (p.field.as_str(), p.expected, p.got),
            (
                "params.b",
                json!("no such key; allowed: a, opts"),
                json!("array")
            )
        );
        let p = first_error(&schema, &json!({"a": 1.5}));
        assert_eq!(
            p.message,
            "parameter 'params.a' must be integer, got number"
        );
        assert_eq!((p.violation, p.got), ("value", json!("number")));
    }
}
