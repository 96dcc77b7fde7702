//! Settings: environment variables given to a job, as literals or taken from the host's own
//! environment by name (so a secret lives in the host's environment, not in the manifest).
//!
//! Values are resolved when the manifest loads (a missing host variable makes the type broken,
//! naming it) and are never shown: `list_job_types`, `/health` and logs carry names only, and
//! [`EnvGrant`]'s `Debug` leaves the value out.

use wasmtime_wasi::WasiCtxBuilder;

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvSource {
    /// Written in the manifest.
    Literal,
    /// The host's variable of this name, read at load.
    FromHost(String),
}

/// One variable a job sees.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvGrant {
    /// The name the job reads.
    pub name: String,
    /// Where the value came from.
    pub source: EnvSource,
    value: String,
}

impl std::fmt::Debug for EnvGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvGrant")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why a variable was refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The name is empty or holds `=` or NUL.
    #[error("'{0}' is not a variable name")]
    Name(String),
    /// The host has no such variable (or it is not UTF-8).
    #[error("the host's environment has no variable '{0}'")]
    MissingOnHost(String),
}

impl EnvGrant {
    /// A literal value.
    pub fn literal(name: &str, value: &str) -> Result<Self, EnvError> {
        check_name(name)?;
        Ok(EnvGrant {
            name: name.into(),
            source: EnvSource::Literal,
            value: value.into(),
        })
    }

    /// The value of the host's variable `host_name`, read now.
    pub fn from_host(name: &str, host_name: &str) -> Result<Self, EnvError> {
        check_name(name)?;
        check_name(host_name)?;
        let value =
            std::env::var(host_name).map_err(|_| EnvError::MissingOnHost(host_name.into()))?;
        Ok(EnvGrant {
            name: name.into(),
            source: EnvSource::FromHost(host_name.into()),
            value,
        })
    }

    pub(crate) fn apply(&self, wasi: &mut WasiCtxBuilder) {
        wasi.env(&self.name, &self.value);
    }
}

fn check_name(name: &str) -> Result<(), EnvError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(EnvError::Name(name.into()));
    }
    Ok(())
}
