//! `queuemgr new NAME`: a job from a template that builds as it is — a Rust crate against the
//! guest SDK, or (`--python`) a Python file for `scripts/build-python-job.sh`.

use std::path::{Path, PathBuf};

/// Why a job could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Not a usable name.
    #[error("'{0}' is not a job name: use letters, digits, '-' and '_', starting with a letter")]
    Name(String),
    /// The target exists.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// What.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The guest SDK of the source tree this binary was built from, if it is still there.
pub fn default_sdk() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    std::fs::canonicalize(p).ok()
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::Name(name.to_string()))
    }
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ScaffoldError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a Rust job crate `dir/NAME`; returns the command that builds it.
pub fn rust(name: &str, dir: &Path, sdk: &Path) -> Result<String, ScaffoldError> {
    check_name(name)?;
    let root = dir.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let crate_name = name.replace('_', "-");
    let stem = name.replace('-', "_");
    let cargo = format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
queuemgr-guest = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A job is its own workspace (it builds for wasm32-wasip2, apart from any host crate).
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#,
        sdk = sdk.display().to_string().replace('\\', "/"),
    );
    let lib = format!(
        r##"//! The `{stem}` job. Build: `cargo build --release --target wasm32-wasip2`, then copy
//! `target/wasm32-wasip2/release/{stem}.wasm` into the host's jobs directory.

use queuemgr_guest::{{Job, JobError, info, progress, sleep}};
use std::time::Duration;

#[derive(serde::Deserialize)]
struct Params {{
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_steps")]
    steps: u32,
}}

fn default_name() -> String {{
    "world".into()
}}

fn default_steps() -> u32 {{
    3
}}

struct {ty};

impl Job for {ty} {{
    const NAME: &'static str = "{stem}";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Greets `name` in `steps` steps, one a second.";
    const PARAMS_SCHEMA: &'static str = r#"{{
        "type": "object",
        "properties": {{
            "name": {{"type": "string", "description": "Who to greet"}},
            "steps": {{"type": "integer", "minimum": 1, "maximum": 100, "description": "Steps, one a second"}}
        }},
        "additionalProperties": false
    }}"#;
    type Params = Params;
    type Output = serde_json::Value;

    fn run(p: Params) -> Result<Self::Output, JobError> {{
        info!("greeting {{}}", p.name);
        for step in 1..=p.steps {{
            if sleep(Duration::from_secs(1)) {{
                return Err(JobError::new("STOPPED", "stop requested"));
            }}
            progress((step * 100 / p.steps) as u8, format!("step {{step}}/{{}}", p.steps));
        }}
        Ok(serde_json::json!({{ "greeting": format!("hello, {{}}", p.name) }}))
    }}
}}

queuemgr_guest::export_job!({ty});
"##,
        ty = type_name(&stem),
    );
    write(&root.join("Cargo.toml"), &cargo)?;
    write(&root.join("src/lib.rs"), &lib)?;
    Ok(format!(
        "cd {} && cargo build --release --target wasm32-wasip2 && cp target/wasm32-wasip2/release/{stem}.wasm <jobs-dir>/",
        root.display()
    ))
}

/// Writes a Python job `dir/NAME.py`; returns the command that builds it.
pub fn python(name: &str, dir: &Path) -> Result<String, ScaffoldError> {
    check_name(name)?;
    let stem = name.replace('-', "_");
    let path = dir.join(format!("{stem}.py"));
    if path.exists() {
        return Err(ScaffoldError::Exists(path));
    }
    let text = format!(
        r#""""The `{stem}` job. Build: scripts/build-python-job.sh {stem}.py -o <jobs-dir>/{stem}.wasm"""

from queuemgr_job import QueueJobBase


class {ty}(QueueJobBase):
    name = "{stem}"
    version = "0.1.0"
    description = "Greets `name` in `steps` steps, one a second."
    params_schema = {{
        "type": "object",
        "properties": {{
            "name": {{"type": "string"}},
            "steps": {{"type": "integer", "minimum": 1, "maximum": 100}},
        }},
    }}

    def execute(self):
        name = self.params.get("name", "world")
        steps = self.params.get("steps", 3)
        for step in range(1, steps + 1):
            if self.sleep(1):
                return
            self.set_progress(step * 100 // steps, f"step {{step}}/{{steps}}")
        self.set_result({{"greeting": f"hello, {{name}}"}})
"#,
        ty = type_name(&stem),
    );
    write(&path, &text)?;
    Ok(format!(
        "scripts/build-python-job.sh {} -o <jobs-dir>/{stem}.wasm",
        path.display()
    ))
}

/// `my_job` → `MyJob`.
fn type_name(stem: &str) -> String {
    stem.split(['_', '-'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}
