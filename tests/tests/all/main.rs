//! Every end-to-end test, as one test binary (wasmtime's `tests/all`): one link of the host
//! instead of one per file, and one place to run them from (`cargo nextest run -p
//! queuemgr-tests`, or one test by name: `cargo nextest run -p queuemgr-tests seed_curls`).
//! The helpers they share (servers, PostgreSQL, venvs, the conformance suites) are the
//! `queuemgr_tests` library in `tests/src/`.

mod catalog_live;
mod clients;
mod commands;
mod crash;
mod disk;
mod flows;
mod framework_client;
mod fuzz;
mod grants;
mod hostile;
mod http_seed;
mod keys;
mod live;
mod native_io;
mod people;
mod postgres;
mod python;
mod queues;
mod reference_errors;
mod registry_conformance;
mod retention;
mod runtime;
mod schedules;
mod scheduling;
mod schemathesis;
mod traces;
