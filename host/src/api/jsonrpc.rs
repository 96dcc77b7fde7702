//! JSON-RPC framing as the framework speaks it: the 2.0 form and the short
//! `{"command":…,"params":…}` form, and the two kinds of error — protocol and validation
//! errors at the top level, command failures in band (`result.success = false`).

use serde_json::{Value, json};

/// JSON-RPC error codes used at the top level.
pub mod codes {
    /// The body is not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such command.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Params missing, unknown, of the wrong type or value.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The host failed.
    pub const INTERNAL: i64 = -32603;
    /// A command that ran and failed (in band).
    pub const DOMAIN: i64 = -32000;
    /// The caller's key may not call this command (its role is too low); answered with HTTP
    /// 403 when it is the only call of the request.
    pub const FORBIDDEN: i64 = -32003;
}

/// A top-level JSON-RPC error (`{"error":{code,message,data?}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The JSON-RPC code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Structured details.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds structured data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// A command failure reported in band: `{"success":false,"error":{…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainError {
    /// Usually [`codes::DOMAIN`].
    pub code: i64,
    /// Short message, e.g. `Job not found`.
    pub message: String,
    /// `domain_code` and details.
    pub data: Value,
}

/// How a command call ended, before framing.
#[derive(Debug)]
pub enum CallResult {
    /// `{"success":true,"data":…}`.
    Ok(Value),
    /// In band failure.
    Domain(DomainError),
    /// Top-level error.
    Rpc(RpcError),
    /// A result framed as it is, without the `{"success":true,"data":…}` wrapper: the framework
    /// answers a queued command so (`{"success":true,"job_id":…,"status":"pending",…}`).
    Plain(Value),
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The command name.
    pub method: String,
    /// The params (`{}` when absent).
    pub params: Value,
    /// The id to echo.
    pub id: Value,
}

/// Parses one request object. On error returns the envelope to send (with the best id known).
/// Takes the body, so that its params move into the request rather than being copied.
pub fn parse_request(mut body: Value) -> Result<Request, Value> {
    let Some(obj) = body.as_object_mut() else {
        return Err(envelope(
            Value::Null,
            CallResult::Rpc(RpcError::new(
                codes::INVALID_REQUEST,
                "Invalid Request: request must be a JSON object",
            )),
        ));
    };
    let is_rpc = obj.contains_key("jsonrpc") || obj.contains_key("method");
    let id = match obj.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => id.clone(),
        Some(_) => {
            return Err(envelope(
                Value::Null,
                CallResult::Rpc(RpcError::new(
                    codes::INVALID_REQUEST,
                    "Invalid Request: id must be a string, a number or null",
                )),
            ));
        }
        None if is_rpc && obj.contains_key("jsonrpc") => Value::Null,
        None => json!(1),
    };
    let fail = |msg: &str| {
        Err(envelope(
            id.clone(),
            CallResult::Rpc(RpcError::new(codes::INVALID_REQUEST, msg)),
        ))
    };
    if let Some(v) = obj.get("jsonrpc")
        && v != "2.0"
    {
        return fail("Invalid Request: jsonrpc must be '2.0'");
    }
    let method = match obj.get("method").or_else(|| obj.get("command")) {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return fail("Invalid Request: command must be a non-empty string"),
        None => return fail("Invalid Request: command is required"),
    };
    let params = obj.remove("params").unwrap_or_else(|| json!({}));
    Ok(Request { method, params, id })
}

/// Frames a call result with its id.
pub fn envelope(id: Value, result: CallResult) -> Value {
    match result {
        CallResult::Ok(data) => {
            json!({"jsonrpc": "2.0", "result": {"success": true, "data": data}, "id": id})
        }
        CallResult::Domain(e) => json!({
            "jsonrpc": "2.0",
            "result": {"success": false, "error": {"code": e.code, "message": e.message, "data": e.data}},
            "id": id,
        }),
        CallResult::Rpc(e) => json!({"jsonrpc": "2.0", "error": e.to_json(), "id": id}),
        CallResult::Plain(v) => json!({"jsonrpc": "2.0", "result": v, "id": id}),
    }
}
