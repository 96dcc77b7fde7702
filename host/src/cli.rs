//! The command line (`queuemgr serve`, `migrate`, and the client subcommands): the binary's
//! edge, where errors become `anyhow` and exit codes.

use crate::client::commands::{self as client, Conn, ParamArgs};
use crate::client::{Client, scaffold};
use crate::server::{self, ServeArgs};
use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
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
    /// Add a job, start it and follow it with a progress bar; print its result (exit 0 if it
    /// completed, 1 if not; Ctrl-C stops it).
    Run {
        /// The job type.
        job_type: String,
        #[command(flatten)]
        params: ParamArgs,
        /// The job's id (default: generated).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Add a job (prints its id); `--start` starts it too.
    Add {
        /// The job type.
        job_type: String,
        #[command(flatten)]
        params: ParamArgs,
        /// The job's id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Start it now.
        #[arg(long)]
        start: bool,
        /// Its named queue (default: its type's manifest `[queue]`, else `default`).
        #[arg(long)]
        queue: Option<String>,
        /// Its concurrency key (a tenant, a customer): the queue's per-key limits apply.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a job.
    Start {
        /// The job's id.
        job_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A job's status, progress, result or error.
    Status {
        /// The job's id.
        job_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// A flow: a job and the jobs its runs enqueued (or an add_flow's jobs), as a tree with each
    /// one's status and what it waits for.
    Flow {
        /// The job's (or the add_flow's) id.
        job_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Sends an event to a job (e.g. an approval): a job waiting for it resumes.
    SendEvent {
        /// The job's id (or, with --key, the unique_key it holds).
        target: String,
        /// The event's name.
        name: String,
        /// The event's payload (JSON).
        #[arg(long)]
        payload: Option<String>,
        /// TARGET is a unique_key, not a job id.
        #[arg(long)]
        key: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Jobs, newest first.
    List {
        /// Only this status (PENDING, RUNNING, COMPLETED, ERROR, STOPPED, DELETED).
        #[arg(long)]
        status: Option<String>,
        /// Only this job type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// Jobs per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The page after this cursor (printed under the table).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// A job's log lines; `-f` follows them until the job ends.
    Logs {
        /// The job's id.
        job_id: String,
        /// Follow new lines.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop a job.
    Stop {
        /// The job's id.
        job_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a job (stopping it first if it runs).
    Delete {
        /// The job's id.
        job_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The job types the host runs, with their params.
    Types {
        #[command(flatten)]
        conn: Conn,
    },
    /// The schedules of periodic jobs: next runs, last run and its status.
    Schedules {
        #[command(flatten)]
        conn: Conn,
    },
    /// Add, pause, resume or delete a schedule of periodic jobs.
    Schedule {
        #[command(subcommand)]
        action: ScheduleCommand,
    },
    /// The named queues: limits, paused state, waiting and running jobs.
    Queues {
        #[command(flatten)]
        conn: Conn,
    },
    /// Make API keys for the keys file (`--keys-file`).
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Set a queue's limits, or pause or resume it.
    Queue {
        #[command(subcommand)]
        action: QueueCommand,
    },
    /// A live view of running jobs, one progress bar each, until Ctrl-C.
    Watch {
        /// Only this job type.
        #[arg(long = "type")]
        job_type: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Write a new job from a template: a Rust crate (default) or a Python file.
    New {
        /// The job's name (becomes the job type).
        name: String,
        /// A Python job instead of a Rust crate.
        #[arg(long)]
        python: bool,
        /// Where to write it.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// The guest SDK (`guest-sdk/`) the crate depends on (default: the one of this
        /// source tree).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
}

/// `queuemgr keys …`.
#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh key (once: the host keeps only its SHA-256) and its entry for the keys
    /// file.
    New {
        /// The key's name: who holds it (logged with what it does).
        name: String,
        /// What it may do.
        #[arg(long, value_enum, default_value = "read")]
        role: crate::auth::Role,
        /// Only jobs of these types (globs: `report_*`; repeat or separate with commas).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Only jobs in these queues (globs; repeat or separate with commas).
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
}

/// `queuemgr queue …`.
#[derive(Subcommand)]
enum QueueCommand {
    /// Set a queue's limits (each across all hosts; 0 or `none` removes one).
    Set {
        /// The queue's name.
        name: String,
        /// Most of its jobs running at once.
        #[arg(long)]
        concurrency: Option<u32>,
        /// Most of its jobs with one concurrency key running at once.
        #[arg(long = "key-concurrency")]
        key_concurrency: Option<u32>,
        /// Most starts per period, e.g. 100/min.
        #[arg(long)]
        rate: Option<String>,
        /// Most starts per period with one concurrency key.
        #[arg(long = "key-rate")]
        key_rate: Option<String>,
        /// The priority of its jobs that set none.
        #[arg(long, allow_hyphen_values = true)]
        priority: Option<i32>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause a queue: nothing new is claimed from it; running jobs go on.
    Pause {
        /// The queue's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `queuemgr schedule …`.
#[derive(Subcommand)]
enum ScheduleCommand {
    /// Add a schedule: NAME runs TYPE at each slot of CRON (5 fields, 6 with seconds first, or
    /// @hourly, @daily, …).
    Add {
        /// The schedule's name.
        name: String,
        /// The job type.
        job_type: String,
        /// The cron expression (quote it).
        cron: String,
        #[command(flatten)]
        params: ParamArgs,
        /// IANA time zone the expression is read in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// While the last run is live: allow, skip or queue.
        #[arg(long, default_value = "skip")]
        overlap: String,
        /// Slots missed while no host led: none, latest or all.
        #[arg(long = "catch-up", default_value = "latest")]
        catch_up: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause a schedule.
    Pause {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a schedule from now.
    Resume {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a schedule (its jobs stay).
    Delete {
        /// The schedule's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
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
    let code = match cli.command {
        Command::Serve(args) => return rt.block_on(serve(*args)),
        Command::Migrate(m) => return rt.block_on(migrate(m)),
        Command::New {
            name,
            python,
            dir,
            sdk,
        } => return new_job(&name, python, &dir, sdk),
        Command::Keys {
            action:
                KeysCommand::New {
                    name,
                    role,
                    types,
                    queues,
                },
        } => return new_key(&name, role, &crate::auth::Scope::new(&types, &queues)),
        other => rt.block_on(client_command(other)),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

fn new_job(
    name: &str,
    python: bool,
    dir: &std::path::Path,
    sdk: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let build = if python {
        scaffold::python(name, dir)?
    } else {
        let sdk = sdk.or_else(scaffold::default_sdk).context(
            "cannot find the guest SDK (guest-sdk/ of the queuemgr source tree): pass --sdk PATH",
        )?;
        scaffold::rust(name, dir, &sdk)?
    };
    println!("created {name}; build it with:\n  {build}");
    Ok(())
}

async fn client_command(cmd: Command) -> Result<i32, crate::client::ClientError> {
    let conn_of = |c: &Conn| Client::new(&c.url, c.api_key.clone());
    match cmd {
        Command::Run {
            job_type,
            params,
            id,
            conn,
        } => client::run(&conn_of(&conn), &conn, &job_type, params.build()?, id).await,
        Command::Add {
            job_type,
            params,
            id,
            start,
            queue,
            key,
            conn,
        } => {
            let mut extra = serde_json::Map::new();
            if let Some(q) = queue {
                extra.insert("queue".into(), json!(q));
            }
            if let Some(k) = key {
                extra.insert("concurrency_key".into(), json!(k));
            }
            client::add(
                &conn_of(&conn),
                &conn,
                &job_type,
                params.build()?,
                id,
                start,
                extra,
            )
            .await
        }
        Command::Start { job_id, conn } => {
            client::act(&conn_of(&conn), &conn, "start_job", &job_id).await
        }
        Command::Stop { job_id, conn } => {
            client::act(&conn_of(&conn), &conn, "stop_job", &job_id).await
        }
        Command::Delete { job_id, conn } => {
            client::act(&conn_of(&conn), &conn, "delete_job", &job_id).await
        }
        Command::Status { job_id, conn } => client::status(&conn_of(&conn), &conn, &job_id).await,
        Command::Flow { job_id, conn } => client::flow(&conn_of(&conn), &conn, &job_id).await,
        Command::SendEvent {
            target,
            name,
            payload,
            key,
            conn,
        } => {
            client::send_event(
                &conn_of(&conn),
                &conn,
                &target,
                key,
                &name,
                payload.as_deref(),
            )
            .await
        }
        Command::List {
            status,
            job_type,
            limit,
            cursor,
            conn,
        } => client::list(&conn_of(&conn), &conn, status, job_type, limit, cursor).await,
        Command::Logs {
            job_id,
            follow,
            conn,
        } => client::logs(&conn_of(&conn), &conn, &job_id, follow).await,
        Command::Types { conn } => client::types(&conn_of(&conn), &conn).await,
        Command::Watch { job_type, conn } => client::watch(&conn_of(&conn), &conn, job_type).await,
        Command::Schedules { conn } => client::schedules(&conn_of(&conn), &conn).await,
        Command::Schedule { action } => match action {
            ScheduleCommand::Add {
                name,
                job_type,
                cron,
                params,
                tz,
                overlap,
                catch_up,
                conn,
            } => {
                let p = json!({"action": "add_schedule", "name": name, "job_type": job_type,
                    "cron": cron, "params": params.build()?, "timezone": tz,
                    "overlap": overlap, "catch_up": catch_up});
                client::schedule_action(&conn_of(&conn), &conn, p).await
            }
            ScheduleCommand::Pause { name, conn } => {
                let p = json!({"action": "pause_schedule", "name": name});
                client::schedule_action(&conn_of(&conn), &conn, p).await
            }
            ScheduleCommand::Resume { name, conn } => {
                let p = json!({"action": "resume_schedule", "name": name});
                client::schedule_action(&conn_of(&conn), &conn, p).await
            }
            ScheduleCommand::Delete { name, conn } => {
                let p = json!({"action": "delete_schedule", "name": name});
                client::schedule_action(&conn_of(&conn), &conn, p).await
            }
        },
        Command::Queues { conn } => client::queues(&conn_of(&conn), &conn).await,
        Command::Queue { action } => {
            let (p, conn) = match action {
                QueueCommand::Set {
                    name,
                    concurrency,
                    key_concurrency,
                    rate,
                    key_rate,
                    priority,
                    conn,
                } => {
                    let mut p = json!({"action": "set_queue", "queue": name});
                    for (k, v) in [
                        ("concurrency", concurrency.map(|v| json!(v))),
                        ("key_concurrency", key_concurrency.map(|v| json!(v))),
                        ("rate", rate.map(|v| json!(v))),
                        ("key_rate", key_rate.map(|v| json!(v))),
                        ("priority", priority.map(|v| json!(v))),
                    ] {
                        if let Some(v) = v {
                            p[k] = v;
                        }
                    }
                    (p, conn)
                }
                QueueCommand::Pause { name, conn } => {
                    (json!({"action": "pause_queue", "queue": name}), conn)
                }
                QueueCommand::Resume { name, conn } => {
                    (json!({"action": "resume_queue", "queue": name}), conn)
                }
            };
            client::queue_action(&conn_of(&conn), &conn, p).await
        }
        Command::Serve(_) | Command::Migrate(_) | Command::New { .. } | Command::Keys { .. } => {
            Ok(0)
        }
    }
}

/// `queuemgr keys new`: the key on the first line of stdout (for scripts), then the entry.
fn new_key(name: &str, role: crate::auth::Role, scope: &crate::auth::Scope) -> anyhow::Result<()> {
    anyhow::ensure!(!name.trim().is_empty(), "the key's name is empty");
    anyhow::ensure!(
        scope.is_empty() || role != crate::auth::Role::Metrics,
        "a metrics key sees no jobs: --types and --queues do not apply to it"
    );
    let (key, sha256) = crate::auth::new_key().context("no randomness for a key")?;
    println!("{key}");
    println!();
    println!("# Shown once: give the key above to its holder; the host keeps only its SHA-256.");
    println!("# Add to the keys file (--keys-file); the host reads it again within a second:");
    print!("{}", crate::auth::file_entry(name, role, &sha256, scope));
    Ok(())
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
    let listener = tokio::net::TcpListener::bind(args.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.http.listen))?;
    let addr = listener.local_addr()?;
    host.queue
        .advertise(args.cluster.advertise_url.clone().unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                let name = rustix::system::uname();
                format!(
                    "http://{}:{}",
                    name.nodename().to_string_lossy(),
                    addr.port()
                )
            } else {
                format!("http://{addr}")
            }
        }));
    tracing::info!(%addr, jobs_dir = %args.jobs.jobs_dir.display(), registry = %args.store.registry.display(),
        auth = args.http.api_key.is_some(), "queuemgr listening");
    // A line on stdout that tests and scripts can wait for (with the real port when :0).
    println!("queuemgr listening on http://{addr}");
    crate::api::serve::serve(
        listener,
        host.router.clone(),
        Some(host.keys.clone()),
        args.http.conn_limits(),
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
