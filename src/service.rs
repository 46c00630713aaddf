//! Running under systemd (`Type=notify`): readiness, watchdog, reload and
//! stop notifications over `$NOTIFY_SOCKET` (sd_notify(3)), written here as
//! the few lines of unix datagram they are.
//!
//! Everything is a no-op when `NOTIFY_SOCKET` is unset, so the same binary
//! runs from a shell, a container or systemd. Logging is set up here too:
//! plain text (journal-friendly when stderr is the journal) or JSON.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long the watchdog's probe task may take to be scheduled, as a part
/// of the ping interval: beyond it the runtime counts as stuck and that ping
/// is skipped.
const PROBE_SHARE: u32 = 4;

/// Sends one notification (`READY=1`, `WATCHDOG=1`, ...; several may be
/// joined with newlines) to `$NOTIFY_SOCKET`. Returns whether it was sent;
/// false when not running under a service manager that asked for them.
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(Path::new(&socket), state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify the service manager ({state:?})");
            false
        }
    }
}

/// `sd_notify`: one datagram to a filesystem path or, when the name starts
/// with `@`, to an abstract socket.
fn send(socket: &Path, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_os_str().as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

/// The watchdog interval systemd asked for (`WatchdogSec=` reaches the
/// service as `$WATCHDOG_USEC`), when it is meant for this process
/// (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The gateway is serving: the HTTP listener is bound and every camera task
/// started. Sends `READY=1`, starts the watchdog (pings at half of
/// `$WATCHDOG_USEC`), and sends `STOPPING=1` as soon as `shutdown` is
/// cancelled. `health` is called before every ping, on a blocking thread:
/// it should touch the shared state the gateway cannot live without (the
/// supervisor's camera table), so a deadlock there stops the pings. Call
/// once, from inside the runtime.
pub fn started(shutdown: &CancellationToken, health: impl Fn() + Send + Sync + 'static) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    notify("READY=1\nSTATUS=running");
    let shutdown = shutdown.clone();
    let interval = watchdog_interval();
    // Ends with `shutdown`; nothing waits for it since it holds no state.
    tokio::spawn(async move {
        match interval {
            Some(interval) => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = watchdog(interval / 2, Arc::new(health), || {
                        notify("WATCHDOG=1");
                    }) => {}
                }
            }
            None => shutdown.cancelled().await,
        }
        notify("STOPPING=1\nSTATUS=stopping");
    });
}

/// Pings `WATCHDOG=1` every `every` for as long as the gateway is healthy:
/// each ping needs a freshly spawned probe task to run `health` (on the
/// blocking pool) within a quarter of the period. That fails when every
/// worker thread is blocked, the runtime is starved or `health` hangs on a
/// deadlocked lock; then pings stop and systemd restarts the service.
async fn watchdog(every: Duration, health: Arc<dyn Fn() + Send + Sync>, ping: impl Fn()) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let check = health.clone();
        let probe = tokio::spawn(async move { tokio::task::spawn_blocking(move || check()).await });
        match tokio::time::timeout(every / PROBE_SHARE, probe).await {
            Ok(Ok(Ok(()))) => ping(),
            _ => tracing::warn!(
                "the gateway did not answer a health probe within {} ms: skipping this watchdog ping",
                (every / PROBE_SHARE).as_millis()
            ),
        }
    }
}

/// A reload began (SIGHUP): `RELOADING=1` with the monotonic time systemd
/// requires for it. Follow with [`reloaded`].
pub fn reloading() {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
        monotonic_usec()
    ));
}

/// The reload ended (applied or refused): `READY=1` again.
pub fn reloaded() {
    notify("READY=1\nSTATUS=running");
}

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it
/// (`Instant` has no public epoch).
fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event. On a terminal with colours and
    /// timestamps; into the journal without either (journald stamps every
    /// line itself) and with a `<N>` syslog priority prefix, so
    /// `journalctl -p warning` works.
    Text,
    /// One JSON object per event (timestamp, level, target, fields, spans),
    /// for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (use text or json)")),
        }
    }
}

/// Installs the global tracing subscriber on stderr. `format` is the
/// `--log-format` flag; without it `$CAMGATE_LOG_FORMAT` decides, else
/// text. The level filter is `$RUST_LOG` (default `info`). Returns a
/// warning to print when `$CAMGATE_LOG_FORMAT` is not understood.
pub fn init_logging(format: Option<LogFormat>) -> Option<String> {
    let mut warning = None;
    let format = format.unwrap_or_else(|| match std::env::var("CAMGATE_LOG_FORMAT") {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            warning = Some(format!("CAMGATE_LOG_FORMAT: {e}; using text"));
            LogFormat::Text
        }),
        _ => LogFormat::Text,
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text if stderr_is_journal() => builder
            .with_ansi(false)
            .event_format(JournalPrefix(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))
            .init(),
        // Colours only on a terminal: log files get plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    warning
}

/// Whether stderr is connected to the journal: systemd sets
/// `$JOURNAL_STREAM` to `DEVICE:INODE` of the stream it gave the service,
/// which stays set in children whose stderr went elsewhere, hence the
/// comparison.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        // No /proc: trust the variable.
        Err(_) => true,
    }
}

/// Prefixes each line with its syslog priority (`<3>` error ... `<7>`
/// debug), which journald strips and records (`SyslogLevelPrefix=`).
struct JournalPrefix<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPrefix<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pings while `health` answers; none while it hangs (a deadlock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchdog_pings_only_while_healthy() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        let hang = Arc::new(AtomicBool::new(false));
        let pings = Arc::new(AtomicUsize::new(0));
        let health = {
            let hang = hang.clone();
            move || {
                while hang.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        let counter = pings.clone();
        let dog = tokio::spawn(watchdog(
            Duration::from_millis(40),
            Arc::new(health),
            move || {
                counter.fetch_add(1, SeqCst);
            },
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(pings.load(SeqCst) >= 5, "{} pings", pings.load(SeqCst));
        hang.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = pings.load(SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pings.load(SeqCst), before, "pinged while hung");
        hang.store(false, SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pings.load(SeqCst) > before, "no ping after recovery");
        dog.abort();
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(&path, "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("camgate-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send(Path::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
