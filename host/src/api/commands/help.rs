//! `help` (the table described, as the framework's `help` answers) and `echo` (its
//! connectivity check).

use super::job_commands::job_commands;
use super::params::{EchoParams, HelpParams};
use super::{Answer, Command};
use crate::api::AppState;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// `echo`: the message (and timestamp, if given) back.
#[derive(Serialize)]
pub(super) struct Echo {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
}

pub(super) async fn echo(_: &AppState, p: EchoParams) -> Answer<Echo> {
    Ok(Echo {
        message: p.message.unwrap_or_default(),
        timestamp: p.timestamp,
    })
}

/// `help`: one command described, or the list of commands.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Help {
    /// `help` with a `cmdname`.
    Command {
        metadata: Metadata,
        schema: Value,
        ai_metadata: AiMetadata,
    },
    /// `help` alone.
    Index {
        tool_info: ToolInfo,
        help_usage: Value,
        commands: Map<String, Value>,
        /// Job types whose name is a built-in command's: the built-in answers to that name.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        shadowed_job_types: Vec<String>,
    },
}

#[derive(Serialize)]
pub(super) struct Metadata {
    name: String,
    summary: String,
    #[serde(rename = "type")]
    kind: &'static str,
    parameters: Map<String, Value>,
    parameters_docs: Map<String, Value>,
}

#[derive(Serialize)]
pub(super) struct AiMetadata {
    parameters: Map<String, Value>,
}

#[derive(Serialize)]
pub(super) struct ToolInfo {
    name: &'static str,
    description: &'static str,
    version: &'static str,
}

/// One parameter as `help` documents it.
#[derive(Serialize)]
struct ParamDoc {
    description: Value,
    #[serde(rename = "type")]
    kind: Value,
    required: bool,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    options: Option<Value>,
}

pub(super) async fn help(state: &AppState, p: HelpParams) -> Answer<Help> {
    let spec = p
        .cmdname
        .as_deref()
        .and_then(Command::parse)
        .and_then(|c| state.commands.iter().find(|s| s.command == c));
    let (jobs, shadowed) = job_commands(state);
    let job = match (spec, p.cmdname.as_deref()) {
        (None, Some(n)) => jobs.iter().find(|j| j.name == n),
        _ => None,
    };
    let (name, description, schema, kind) = match (spec, job) {
        (Some(s), _) => (
            s.name.to_string(),
            s.description.to_string(),
            s.schema.clone(),
            "custom",
        ),
        (None, Some(j)) => (
            j.name.clone(),
            j.description.clone(),
            j.schema.clone(),
            "queued",
        ),
        (None, None) => {
            let mut commands: Map<String, Value> = state
                .commands
                .iter()
                .map(|c| (c.name.to_string(), json!(c.description)))
                .collect();
            for j in &jobs {
                commands.insert(j.name.clone(), json!(j.description));
            }
            return Ok(Help::Index {
                tool_info: ToolInfo {
                    name: "queuemgr",
                    description: "WebAssembly job host (JSON-RPC API)",
                    version: env!("CARGO_PKG_VERSION"),
                },
                help_usage: json!({
                    "description": "Get information about commands",
                    "examples": [
                        {"command": "help", "description": "List of all available commands"},
                        {"command": "help", "params": {"cmdname": "command_name"}, "description": "Get detailed information about a specific command"},
                    ],
                }),
                commands,
                shadowed_job_types: shadowed,
            });
        }
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parameters = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let doc = ParamDoc {
                description: prop.get("description").cloned().unwrap_or(json!("")),
                kind: prop.get("type").cloned().unwrap_or(json!("any")),
                required: required.contains(&name.as_str()),
                options: prop.get("enum").cloned(),
            };
            parameters.insert(name.clone(), json!(doc));
        }
    }
    Ok(Help::Command {
        metadata: Metadata {
            name,
            summary: description,
            kind,
            parameters: parameters.clone(),
            parameters_docs: parameters.clone(),
        },
        schema,
        ai_metadata: AiMetadata { parameters },
    })
}
