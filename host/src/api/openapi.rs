//! The OpenAPI 3.1 document, generated from the command table so that it cannot drift from
//! what the handlers validate.

use super::commands::CommandSpec;
use super::commands::job_commands::JobCommand;
use serde_json::{Value, json};

fn rpc_request_schema(commands: &[CommandSpec], jobs: &[JobCommand]) -> Value {
    let names: Vec<&str> = commands
        .iter()
        .map(|c| c.name)
        .chain(jobs.iter().map(|j| j.name.as_str()))
        .collect();
    json!({
        "type": "object",
        "properties": {
            "jsonrpc": {"type": "string", "enum": ["2.0"], "default": "2.0"},
            "method": {"type": "string", "enum": names, "description": "The command (JSON-RPC 2.0 form)"},
            "command": {"type": "string", "enum": names, "description": "The command (short form)"},
            "params": {"type": "object", "additionalProperties": true, "description": "The command's params: see components.schemas.Command_<name>"},
            "id": {"type": ["string", "number", "null"]},
        },
        "additionalProperties": true,
    })
}

fn json_body(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}, "required": true})
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn detail_schema() -> Value {
    json!({"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]})
}

/// Builds the document: the built-in commands, then the loaded job types (queued commands).
pub fn document(commands: &[CommandSpec], jobs: &[JobCommand]) -> Value {
    let mut schemas = serde_json::Map::new();
    schemas.insert("CommandRequest".into(), rpc_request_schema(commands, jobs));
    schemas.insert(
        "JsonRpcResponse".into(),
        json!({
            "type": "object",
            "properties": {
                "jsonrpc": {"type": "string", "enum": ["2.0"]},
                "result": {"type": "object", "properties": {"success": {"type": "boolean"}, "data": {}, "error": {"type": "object"}}, "required": ["success"]},
                "error": {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}}, "required": ["code", "message"]},
                "id": {"type": ["string", "number", "null"]},
            },
            "required": ["jsonrpc", "id"],
        }),
    );
    schemas.insert(
        "Unauthorized".into(),
        json!({"type": "object", "properties": {"error": {"type": "object"}}, "required": ["error"]}),
    );
    for c in commands {
        let mut s = c.schema.clone();
        s["description"] = json!(c.description);
        schemas.insert(format!("Command_{}", c.name), s);
    }
    for j in jobs {
        let mut s = j.schema.clone();
        if s.is_object() {
            s["description"] = json!(j.description);
        }
        schemas.insert(format!("Command_{}", j.name), s);
    }
    let rpc_responses = json!({
        "200": json_response("A JSON-RPC envelope (command success, in-band failure or top-level error)", json!({"$ref": "#/components/schemas/JsonRpcResponse"})),
        "400": json_response("Malformed JSON", detail_schema()),
        "401": json_response("Missing or wrong API key (when one is configured)", json!({"$ref": "#/components/schemas/Unauthorized"})),
        "413": json_response("Body too large", detail_schema()),
        "422": json_response("Body is not a JSON object", detail_schema()),
    });
    let single = json!({
        "post": {
            "summary": "Run one command",
            "description": "JSON-RPC 2.0 request or the short form {\"command\":…,\"params\":…}.",
            "requestBody": json_body(json!({"$ref": "#/components/schemas/CommandRequest"})),
            "responses": rpc_responses,
        }
    });
    let mut batch_responses = rpc_responses.clone();
    batch_responses["200"] = json_response(
        "One envelope per request",
        json!({"type": "array", "items": {"$ref": "#/components/schemas/JsonRpcResponse"}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "queuemgr",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A job host that runs jobs as WebAssembly components, behind the framework's JSON-RPC API. Every loaded job type is also a queued command (a method of its own); its callers may wait on it over the WebSocket at /ws (the framework's command session, see docs/compatibility.md), which is not an HTTP operation and so is not listed here.",
        },
        "paths": {
            "/api/jsonrpc": single,
            "/api/v1/execute": single,
            "/api/jsonrpc/batch": {
                "post": {
                    "summary": "Run a batch of commands",
                    "requestBody": json_body(json!({"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/CommandRequest"}})),
                    "responses": batch_responses,
                }
            },
            "/health": {"get": {"summary": "Health (always 200; no API key needed)", "responses": {"200": json_response("Health", json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}}, "required": ["status"]}))}}},
            "/commands": {"get": {"summary": "Every command with its params schema", "responses": {
                "200": json_response("Commands", json!({"type": "object", "properties": {"commands": {"type": "object"}}, "required": ["commands"]})),
                "401": json_response("Missing or wrong API key", json!({"$ref": "#/components/schemas/Unauthorized"})),
            }}},
            "/openapi.json": {"get": {"summary": "This document (no API key needed)", "responses": {"200": json_response("OpenAPI 3.1", json!({"type": "object"}))}}},
        },
        "components": {"schemas": schemas},
    })
}
