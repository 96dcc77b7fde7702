//! The command line (`queuemgr serve`): the binary's edge, where errors become `anyhow`.

use crate::server::{self, ServeArgs};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// A job host that runs jobs as WebAssembly components.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "QUEUEMGR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and run jobs from the jobs directory.
    Serve(Box<ServeArgs>),
    /// Apply the job store's migrations to a PostgreSQL database, and exit.
    Migrate(MigrateArgs),
}

/// Settings of `queuemgr migrate`.
#[derive(clap::Args)]
struct MigrateArgs {
    /// `postgres://user@host:port/db`.
    #[arg(long, env = "QUEUEMGR_STORE")]
    store: String,
    /// The schema of the queue.
    #[arg(long, env = "QUEUEMGR_STORE_SCHEMA", default_value = "queuemgr")]
    store_schema: String,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("QUEUEMGR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr (stdout carries only the "listening on" line); colours only on a TTY.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if cli.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("queuemgr-http")
        .build()
        .context("cannot start the HTTP runtime")?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve(*args)),
        Command::Migrate(m) => rt.block_on(migrate(m)),
    }
}

async fn migrate(m: MigrateArgs) -> anyhow::Result<()> {
    let url =
        server::StoreUrl::from_parts(Some(&m.store), std::path::Path::new(""), &m.store_schema, 1)?;
    let server::StoreUrl::Postgres(cfg) = url else {
        anyhow::bail!("migrate needs a postgres:// store; a jsonl store has no migrations");
    };
    let n = crate::store::postgres::PgStore::migrate(&cfg)
        .await
        .context("migrations failed")?;
    println!("{n} migration(s) applied to schema {}", m.store_schema);
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let host = server::build(&args)
        .await
        .context("cannot start queuemgr")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, jobs_dir = %args.jobs_dir.display(), registry = %args.registry.display(),
        auth = args.api_key.is_some(), "queuemgr listening");
    // A line on stdout that tests and scripts can wait for (with the real port when :0).
    println!("queuemgr listening on http://{addr}");
    crate::api::serve::serve(
        listener,
        host.router.clone(),
        server::Host::conn_limits(&args),
        shutdown_signal(),
    )
    .await;
    tracing::info!("shutting down: stopping running jobs");
    host.shutdown().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
