//! OpenTelemetry traces: one trace per job, from the request that added it to each attempt's
//! run, exported over OTLP/HTTP.
//!
//! Why our own spans, not a bridge from `tracing`: a job's life is not one call stack. The
//! request that adds it ends long before the job runs, possibly on another host, and each
//! retry is a new run. So the job carries its trace with it: the add opens a `job.enqueue`
//! span (a child of the request's W3C `traceparent`, or the root of a new trace), and the job
//! records that span's context (`traceparent` on the record, in both stores). Every run,
//! wherever it happens, ends as two spans under it, built with their real start and end
//! times: `job.queue_wait` (from when the job became due to its claim) and `job.run` (from the
//! claim to the end, with the job's type, id, attempt, host and outcome, and its log lines as
//! span events). A retry is one more pair in the same trace.
//!
//! Off unless `--otlp-endpoint` or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; then spans are batched and sent by the SDK's
//! own thread (`OTEL_BSP_*` tune it), never on a request's or a job's path. The exporter sends
//! through the host's runtime with the `reqwest` client the host already uses.

use crate::job::JobRecord;
use crate::runtime::LogLine;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The flags of `queuemgr serve` for traces.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceArgs {
    /// Send OpenTelemetry traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318;
    /// `/v1/traces` is added). Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none: no traces.
    #[arg(long, env = "QUEUEMGR_OTLP_ENDPOINT", help_heading = "Traces")]
    pub otlp_endpoint: Option<String>,
    /// OTLP encoding: `http/protobuf` (the standard default) or `http/json`. Default:
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else http/protobuf.
    #[arg(long, env = "QUEUEMGR_OTLP_PROTOCOL", value_parser = ["http/protobuf", "http/json"], help_heading = "Traces")]
    pub otlp_protocol: Option<String>,
    /// A trace viewer's URL with `{trace_id}` in it (e.g.
    /// http://jaeger:16686/trace/{trace_id}): jobs link to their trace in the dashboard.
    #[arg(long, env = "QUEUEMGR_TRACE_UI_URL", help_heading = "Traces")]
    pub trace_ui_url: Option<String>,
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter refused its settings.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The protocol is not one of ours.
    #[error("OTLP protocol '{0}': use http/protobuf or http/json")]
    Protocol(String),
}

/// The exporter's HTTP client: the host's `reqwest`, run on the host's runtime (the SDK's
/// export thread has none of its own).
#[derive(Debug, Clone)]
struct Sender {
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Sender {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let sent = self.rt.spawn(async move {
            let r = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await?
                .error_for_status()?;
            let status = r.status();
            let body = r.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        Ok(http::Response::builder().status(status).body(body)?)
    }
}

/// The host's tracer, when traces are on.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    host: String,
    /// The job store's backend (`jsonl`, `postgres`): the `db.system` of store writes.
    backend: &'static str,
    ui: Option<String>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("host", &self.host)
            .finish()
    }
}

/// A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) as a span context, if well formed.
pub fn parse_traceparent(text: &str) -> Option<SpanContext> {
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
        return None;
    }
    if flags.len() != 2 || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let cx = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    cx.is_valid().then_some(cx)
}

/// A span context as a W3C `traceparent`.
pub fn traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// The trace id of a job's `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<String> {
    parse_traceparent(traceparent).map(|cx| cx.trace_id().to_string())
}

fn time(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64)
}

/// An add's `job.enqueue` span, open while the jobs are written.
pub struct Enqueue {
    span: opentelemetry_sdk::trace::Span,
    traceparent: String,
    tracer: SdkTracer,
    backend: &'static str,
}

/// The `job.store_write` span of an add: the durable write alone, inside `job.enqueue`.
pub struct StoreWrite(opentelemetry_sdk::trace::Span);

impl Enqueue {
    /// The context the added jobs record (this span's).
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Opens the span of the store's write, a child of this one.
    pub fn store_write(&self) -> StoreWrite {
        let cx = Context::new().with_remote_span_context(self.span.span_context().clone());
        StoreWrite(
            self.tracer
                .span_builder("job.store_write")
                .with_kind(SpanKind::Client)
                .with_attributes([KeyValue::new("db.system", self.backend)])
                .start_with_context(&self.tracer, &cx),
        )
    }

    /// Ends the span once the write is durable, or failed with `error`.
    pub fn end(mut self, write: StoreWrite, error: Option<&str>) {
        let mut write = write.0;
        if let Some(e) = error {
            write.set_status(Status::error(e.to_string()));
            self.span.set_status(Status::error(e.to_string()));
        }
        write.end();
        self.span.end();
    }
}

impl Telemetry {
    /// Traces on, if an endpoint is configured (flag or environment); `None` if not.
    /// `backend` names the job store (`jsonl`, `postgres`) on store-write spans.
    pub fn start(
        args: &TraceArgs,
        host: &str,
        backend: &'static str,
        rt: tokio::runtime::Handle,
    ) -> Result<Option<Telemetry>, TelemetryError> {
        use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = match (
            &args.otlp_endpoint,
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ) {
            (Some(base), _) => Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
            (None, Some(full)) => Some(full),
            (None, None) => env("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/'))),
        };
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        let protocol = match args
            .otlp_protocol
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            None | Some("http/protobuf") => Protocol::HttpBinary,
            Some("http/json") => Protocol::HttpJson,
            Some(other) => return Err(TelemetryError::Protocol(other.to_string())),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.clone())
            .with_protocol(protocol)
            .with_http_client(Sender {
                client: reqwest::Client::new(),
                rt,
            })
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("queuemgr")
            .with_attribute(KeyValue::new("host.id", host.to_string()))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("queuemgr");
        tracing::info!(%endpoint, "OpenTelemetry traces on");
        Ok(Some(Telemetry {
            provider,
            tracer,
            host: host.to_string(),
            backend,
            ui: args.trace_ui_url.clone(),
        }))
    }

    /// Opens the `job.enqueue` span of an add of `count` jobs (the first `first`), as a child
    /// of the request's `traceparent` or the root of a new trace.
    pub fn enqueue(&self, parent: Option<&str>, count: usize, first: &str) -> Enqueue {
        let cx = parent
            .and_then(parse_traceparent)
            .map(|p| Context::new().with_remote_span_context(p))
            .unwrap_or_default();
        let span = self
            .tracer
            .span_builder("job.enqueue")
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("job.count", count as i64),
                KeyValue::new("job.id", first.to_string()),
                KeyValue::new("host.id", self.host.clone()),
            ])
            .start_with_context(&self.tracer, &cx);
        let traceparent = traceparent(span.span_context());
        Enqueue {
            span,
            traceparent,
            tracer: self.tracer.clone(),
            backend: self.backend,
        }
    }

    /// The spans of one ended run of `job` (as it was claimed): its wait for the claim and the
    /// run itself, under the job's stored context. `outcome` is the run's kind (`completed`,
    /// `failed`, …), `error` its message, `logs` its lines (as span events).
    pub fn run(
        &self,
        job: &JobRecord,
        outcome: &str,
        error: Option<&str>,
        logs: &[(i64, LogLine)],
        ended: SystemTime,
    ) {
        let Some(parent) = job.traceparent.as_deref().and_then(parse_traceparent) else {
            return;
        };
        let cx = Context::new().with_remote_span_context(parent);
        let attrs = || {
            vec![
                KeyValue::new("job.type", job.job_type.clone()),
                KeyValue::new("job.id", job.job_id.clone()),
                KeyValue::new("job.attempt", i64::from(job.attempt)),
                KeyValue::new("job.queue", job.queue.clone()),
                KeyValue::new("host.id", self.host.clone()),
            ]
        };
        let started = job.started_at.unwrap_or(job.updated_at);
        let due = job.scheduled_at.unwrap_or(job.created_at).min(started);
        let mut wait = self
            .tracer
            .span_builder("job.queue_wait")
            .with_kind(SpanKind::Internal)
            .with_start_time(time(due))
            .with_attributes(attrs())
            .start_with_context(&self.tracer, &cx);
        wait.end_with_timestamp(time(started));
        let mut attributes = attrs();
        attributes.push(KeyValue::new("job.outcome", outcome.to_string()));
        let mut run = self
            .tracer
            .span_builder(format!("job.run {}", job.job_type))
            .with_kind(SpanKind::Consumer)
            .with_start_time(time(started))
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &cx);
        for (at, line) in logs {
            run.add_event_with_timestamp(
                "log",
                time(*at),
                vec![
                    KeyValue::new("log.message", line.text.clone()),
                    KeyValue::new("log.level", format!("{:?}", line.level).to_lowercase()),
                    KeyValue::new("log.source", format!("{:?}", line.source).to_lowercase()),
                ],
            );
        }
        match error {
            Some(e) => run.set_status(Status::error(e.to_string())),
            None => run.set_status(Status::Ok),
        }
        run.end_with_timestamp(ended);
    }

    /// The trace viewer's link for a trace id, if one is configured.
    pub fn link(&self, trace_id: &str) -> Option<String> {
        self.ui.as_ref().map(|u| u.replace("{trace_id}", trace_id))
    }

    /// Sends what is buffered and stops (at the host's shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: not all spans were sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_and_print_back() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse_traceparent(t).unwrap();
        assert_eq!(traceparent(&cx), t);
        assert_eq!(
            trace_id(t).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
