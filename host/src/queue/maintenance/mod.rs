//! The queue's maintenance services, one file each: the rescuer (runs whose lease expired), the
//! scheduler (jobs whose time came), the cleaner (retention) and the compactor (the store's own
//! housekeeping). On one host they all run here; with several hosts sharing a store, only the
//! elected leader will run the rescuer, the cleaner and the compactor.

pub(crate) mod cleaner;
pub(crate) mod compactor;
pub(crate) mod rescuer;
pub(crate) mod scheduler;
