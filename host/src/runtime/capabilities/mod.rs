//! What a job may reach beyond its params: nothing by default; files, settings and outbound
//! HTTP when its job type's manifest grants them.
//!
//! One capability, one module, each with the same lifecycle (as Spin's factors):
//! - **link once**: [`crate::runtime::Runtime::new`] links WASI and `wasi:http` for every job,
//!   so a component that imports them loads whether or not its type is granted anything;
//! - **validate at load**: the catalog turns a manifest into [`Grants`] (directories
//!   canonicalised, host variables read, allow-list entries parsed); an error makes the type
//!   broken, never half loaded;
//! - **prepare per run**: [`Grants::apply`] hands one run its preopens and variables, and
//!   [`http::HttpGate`] counts and checks that run's requests.

pub mod dirs;
pub mod env;
pub mod http;

pub use dirs::{DirError, DirGrant, DirIo, IoChoice};
pub use env::{EnvError, EnvGrant, EnvSource};
pub use http::{Destination, HttpGrant, HttpPool, PatternError};

use serde_json::{Value, json};
use std::sync::Arc;
use wasmtime_wasi::WasiCtxBuilder;

/// Everything a job type is granted. `Grants::default()` grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Mounted directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables.
    pub env: Vec<EnvGrant>,
    /// Outbound HTTP (`None`: every request refused).
    pub http: Option<Arc<HttpGrant>>,
}

impl Grants {
    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.env.is_empty() && self.http.is_none()
    }

    /// Adds this grant's directories and variables to one run's WASI context.
    pub(crate) fn apply(&self, wasi: &mut WasiCtxBuilder) -> Result<(), wasmtime::Error> {
        // The flag is one per run: inline only when every mount may block the job's thread.
        if !self.dirs.is_empty() && self.dirs.iter().all(|d| d.io == DirIo::Inline) {
            wasi.allow_blocking_current_thread(true);
        }
        for d in &self.dirs {
            d.apply(wasi)?;
        }
        for e in &self.env {
            e.apply(wasi);
        }
        Ok(())
    }

    /// What is granted, for `list_job_types`: paths, names and destinations, never a value.
    pub fn describe(&self) -> Value {
        let dirs: Vec<Value> = self
            .dirs
            .iter()
            .map(|d| {
                json!({"host": d.host.display().to_string(), "guest": d.guest,
                       "mode": if d.writable { "rw" } else { "ro" }, "io": d.io})
            })
            .collect();
        let env: Vec<Value> = self
            .env
            .iter()
            .map(|e| match &e.source {
                EnvSource::Literal => json!({"name": e.name, "source": "literal"}),
                EnvSource::FromHost(h) => json!({"name": e.name, "source": "host", "host_name": h}),
            })
            .collect();
        let http = self.http.as_ref().map(|h| {
            json!({
                "allow": h.allow.iter().map(Destination::as_str).collect::<Vec<_>>(),
                "max_requests": h.max_requests,
                "timeout_secs": h.timeout.as_secs_f64(),
                "max_response_bytes": h.max_response_bytes,
                "keep_alive": h.keep_alive,
            })
        });
        json!({"dirs": dirs, "env": env, "http": http})
    }
}
