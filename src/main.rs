//! The `raftinel` binary: `serve` runs a node, `ctl` talks to a cluster, `fence` fences a stopped
//! node's local Redis (systemd's `ExecStopPost`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use raftinel::certs::cli::CertsArgs;
use raftinel::config::{self, ServeArgs};
use raftinel::ctl::{self, CtlArgs};

#[derive(Parser)]
#[command(
    name = "raftinel",
    version,
    about = "Raft-backed Redis HA controller, a drop-in for Redis Sentinel"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a raftinel node.
    Serve(ServeArgs),
    /// Operate a cluster through its gRPC API.
    Ctl(CtlArgs),
    /// Make the cluster CA, node and admin certificates.
    Certs(CertsArgs),
    /// Apply a Sentinel's sentinel.conf to the cluster (or print the ctl commands with --dry-run).
    ImportSentinel(ctl::ImportArgs),
    /// Print a shell completion script: `raftinel completions bash > /etc/bash_completion.d/raftinel`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Fence every local Redis of a node's config (systemd's ExecStopPost): takes the same
    /// flags and config file as `serve`; exits 0 when each is fenced or down.
    Fence(ServeArgs),
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // Certificates and completions need no runtime.
    let cli = match cli.command {
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "raftinel", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Cmd::Certs(args) => {
            return match raftinel::certs::cli::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("raftinel certs: {e}");
                    ExitCode::from(2)
                }
            }
        }
        command => Cli { command },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftinel: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Cmd::Serve(args) => runtime.block_on(serve(args)),
        Cmd::Certs(_) | Cmd::Completions { .. } => ExitCode::SUCCESS,
        Cmd::Fence(args) => runtime.block_on(fence(args)),
        Cmd::ImportSentinel(args) => match runtime.block_on(ctl::import_sentinel(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("raftinel import-sentinel: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Ctl(args) => match runtime.block_on(ctl::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("raftinel ctl: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Held until serve returns: dropping it flushes the lines still queued.
    let _log_writer = init_tracing();
    let (config, warnings) = match config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftinel: config error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in warnings {
        tracing::warn!("config: {w}");
    }
    if let Some(device) = &config.watchdog_device {
        if let Err(e) = raftinel::lease::watchdog::Device::check(device) {
            eprintln!("raftinel: config error: `watchdog-device`: {e}; fix the path or its permissions, or remove the key");
            return ExitCode::from(2);
        }
    }
    let trim = tokio::spawn(trim_heap_periodically());
    let result = raftinel::node::run(config, shutdown_signal()).await;
    trim.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::from(e);
            tracing::error!("fatal: {e:#}");
            eprintln!("raftinel: fatal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `raftinel fence`: one line per local Redis on stdout; exit 0 only if each is fenced or down.
async fn fence(args: ServeArgs) -> ExitCode {
    let config = match config::load(&args) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("raftinel fence: config error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.local_redis.is_empty() {
        println!("no `local-redis` in the config: nothing to fence");
        return ExitCode::SUCCESS;
    }
    let view = match raftinel::fence_cmd::read_log(&config) {
        Ok(v) => Some(v),
        Err(e) => {
            println!("the node's log cannot be read ({e}): trying without its Redis credentials");
            None
        }
    };
    let outcomes = raftinel::fence_cmd::fence_all(&config, view.as_ref()).await;
    for (addr, outcome) in &outcomes {
        println!("{}", raftinel::fence_cmd::describe(addr, outcome));
    }
    let unsafe_count = outcomes.iter().filter(|(_, o)| !o.safe()).count();
    if unsafe_count == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "raftinel fence: {unsafe_count} of {} local Redis not fenced and not down",
        outcomes.len()
    );
    ExitCode::FAILURE
}

/// sled runs its flushes on a pool of threads, and glibc gives each new thread its own malloc
/// arena that keeps freed memory: two arenas keep a node's idle RSS near its working set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands memory freed after a burst (snapshots, many concurrent reads) back to the kernel, so idle
/// RSS returns to the working set instead of staying at the burst's peak.
async fn trim_heap_periodically() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free pages; it is thread-safe in glibc.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Log lines go to stderr from a thread of their own. A write to stderr can block for a second
/// (a full journald pipe, or a log file behind an ext4 journal commit that another process's
/// fsync forced); on a runtime thread that would stall heartbeats, probes and lease renewals.
/// Lines beyond the queue are dropped (and counted by tracing-appender) rather than waited for.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(64 * 1024)
        .thread_name("raftinel-log")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(raftinel::loglevel::DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .with_filter_reloading();
    // SENTINEL CONFIG SET loglevel swaps the filter at run time.
    let handle = builder.reload_handle();
    builder.init();
    raftinel::loglevel::install(move |directive| {
        let filter =
            tracing_subscriber::EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    guard
}

/// SIGTERM (systemd) or SIGINT (a terminal): the one way a node is asked to stop.
async fn shutdown_signal() {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with kill -9");
            std::future::pending::<()>().await
        }
    }
}
