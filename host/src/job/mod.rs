//! The job model: a job's record after each transition, its status, the events that move it,
//! why a run failed, the clock and new ids.
//!
//! Why a module of its own: every layer speaks it — the API's views, the queue's services, both
//! store backends, the local journal — and none of them owns it. It lived in the journal's
//! folder, so the PostgreSQL store imported the local journal to name a job.

mod clock;
mod error;
mod id;
mod record;

pub use clock::now_micros;
pub use error::{AttemptError, ErrorInfo, ErrorKind};
pub use id::new_id;
pub use record::{
    AUDIT_KEEP, AuditAction, AuditEntry, DepPolicy, Dependency, Event, JobRecord, Json, Shared,
    Status, StopKind, Wait,
};
