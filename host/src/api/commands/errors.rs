//! A queue error as the API answers it: typed domain errors (`-32000` with a `domain_code`) and
//! invalid params (`-32602`), with statuses spelt in the caller's dialect.

use super::Dialect;
use crate::api::jsonrpc::{CallResult, DomainError, RpcError, codes};
use crate::job::Status;
use crate::queue::QueueError;
use serde_json::json;

/// The answer to a failed call of `method`.
pub(crate) fn domain(e: QueueError, method: &str, dialect: Dialect) -> CallResult {
    let status_name = |s: Status| match dialect {
        Dialect::Framework => s.framework_name(),
        Dialect::Seed => s.as_str(),
    };
    let detail = e.to_string();
    match e {
        QueueError::NotFound(id) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job not found".into(),
            data: json!({"domain_code": "JOB_NOT_FOUND", "field": "job_id", "value": id, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::AlreadyExists(id) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job already exists".into(),
            data: json!({"domain_code": "JOB_ALREADY_EXISTS", "field": "job_id", "value": id, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::StateInvalid { job_id, action, current, allowed, .. } => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job state invalid".into(),
            data: json!({
                "domain_code": "JOB_STATE_INVALID", "field": "job_id", "value": job_id, "store": "queuemgr",
                "action": action, "current_status": status_name(current),
                "allowed_statuses": allowed.iter().map(|s| status_name(*s)).collect::<Vec<_>>(),
                "detail": detail,
            }),
        }),
        QueueError::JobTypeLoading(job_type) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job type loading".into(),
            data: json!({"domain_code": "JOB_TYPE_LOADING", "field": "job_type", "value": job_type,
                "store": "queuemgr", "retryable": true, "detail": detail}),
        }),
        QueueError::UnknownJobType { job_type, available } => CallResult::Rpc(
            RpcError::new(
                codes::INVALID_PARAMS,
                format!(
                    "{method}: parameter 'job_type' must be one of [{}], got '{job_type}'",
                    available.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_data(json!({"field": "job_type", "enum": available, "violation": "value", "expected": available, "got": job_type})),
        ),
        QueueError::NoJobType { available } => CallResult::Rpc(
            RpcError::new(codes::INVALID_PARAMS, "Missing required parameters: job_type")
                .with_data(json!({"missing_parameters": ["job_type"], "violation": "missing", "expected": available})),
        ),
        QueueError::InvalidParams(p) => CallResult::Rpc(
            RpcError::new(codes::INVALID_PARAMS, format!("{method}: {}", p.message))
                .with_data(json!({"field": p.field, "violation": p.violation, "expected": p.expected, "got": p.got})),
        ),
        QueueError::Registry(e) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Registry unavailable".into(),
            data: json!({"domain_code": "REGISTRY_UNAVAILABLE", "store": "queuemgr", "retryable": true,
                "detail": format!("{e}; nothing was changed")}),
        }),
        QueueError::StoreUnavailable(reason) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job store unavailable".into(),
            data: json!({"domain_code": "STORE_UNAVAILABLE", "store": "queuemgr", "retryable": true,
                "detail": format!("{reason}; nothing was changed")}),
        }),
        QueueError::StoreOutcomeUnknown(reason) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Job store unavailable".into(),
            data: json!({"domain_code": "STORE_UNAVAILABLE", "store": "queuemgr", "retryable": true,
                "outcome": "unknown",
                "detail": format!("{reason}; the change may have been made: read the job before sending it again")}),
        }),
        QueueError::ScheduleNotFound(name) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Schedule not found".into(),
            data: json!({"domain_code": "SCHEDULE_NOT_FOUND", "field": "name", "value": name, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::QueueNotFound(name) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Queue not found".into(),
            data: json!({"domain_code": "QUEUE_NOT_FOUND", "field": "queue", "value": name, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::ScheduleExists(name) => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Schedule already exists".into(),
            data: json!({"domain_code": "SCHEDULE_ALREADY_EXISTS", "field": "name", "value": name, "store": "queuemgr", "detail": detail}),
        }),
        QueueError::ScheduleInManifest { name, job_type } => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Schedule declared in a manifest".into(),
            data: json!({"domain_code": "SCHEDULE_IN_MANIFEST", "field": "name", "value": name, "job_type": job_type,
                "store": "queuemgr", "detail": detail}),
        }),
        QueueError::Forbidden { key, message } => CallResult::Rpc(
            RpcError::new(codes::FORBIDDEN, message).with_data(json!({"key": key, "scope": true})),
        ),
        QueueError::ShuttingDown => CallResult::Domain(DomainError {
            code: codes::DOMAIN,
            message: "Host shutting down".into(),
            data: json!({"domain_code": "SHUTTING_DOWN", "store": "queuemgr", "retryable": true, "detail": detail}),
        }),
    }
}
