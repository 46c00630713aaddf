//! The `camgate` command: run the gateway, check a configuration, probe a
//! camera, or run simulated cameras.

#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use camgate::camera::session::Carrier;
use camgate::config::Config;
use camgate::redact::redact_url;
use camgate::service::LogFormat;

#[derive(Parser)]
#[command(name = "camgate", version, about = "RTSP camera ingest gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log format on stderr: text (readable; journal-friendly under
    /// systemd) or json. Default: $CAMGATE_LOG_FORMAT, else text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default, on ./cameras.toml).
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "cameras.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print what it defines.
    Check {
        /// Configuration file.
        #[arg(default_value = "cameras.toml")]
        file: PathBuf,
    },
    /// Connect to one camera and report its streams, resolution, fps, GOP,
    /// bitrate, loss and B-frames.
    Probe {
        /// rtsp://[user:password@]host[:port]/path, or sim://NAME.
        url: String,
        /// Media transport.
        #[arg(long, value_enum, default_value_t = ProbeTransport::Tcp)]
        transport: ProbeTransport,
        /// Seconds of media to measure.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Serve simulated cameras over RTSP: every path /NAME is a camera.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8555")]
        listen: SocketAddr,
        /// Require this user name (Digest auth).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Require this password (Digest auth).
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// Fault seed; each camera uses seed ^ hash(name). A camera URL
        /// query (?truncate=0.02&seed=7...) overrides any fault flag.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// TCP: probability an RTP packet is cut short for good.
        #[arg(long, default_value_t = 0.0)]
        truncate: f64,
        /// TCP: probability an RTP packet is cut short, then resent whole.
        #[arg(long, default_value_t = 0.0)]
        truncate_resend: f64,
        /// TCP: probability of garbage bytes between two interleaved frames.
        #[arg(long, default_value_t = 0.0)]
        garbage: f64,
        /// Stall every this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        stall_every_s: f64,
        /// Length of a stall in milliseconds.
        #[arg(long, default_value_t = 0)]
        stall_ms: u64,
        /// UDP: probability an RTP packet is lost.
        #[arg(long, default_value_t = 0.0)]
        udp_loss: f64,
        /// UDP: probability an RTP packet comes after the next 1-3.
        #[arg(long, default_value_t = 0.0)]
        udp_reorder: f64,
        /// UDP: probability an RTP packet is sent twice.
        #[arg(long, default_value_t = 0.0)]
        udp_duplicate: f64,
        /// Change the video SSRC every this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        ssrc_change_every_s: f64,
        /// Jump RTP timestamps 10 s forward every this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        timestamp_jump_every_s: f64,
        /// Drop the connection every this many seconds (0: never).
        #[arg(long, default_value_t = 0.0)]
        reboot_every_s: f64,
        /// End a playing session that sent no RTCP receiver report for this
        /// many seconds (0: never), as some firmware does.
        #[arg(long, default_value_t = 0.0)]
        require_rr_s: f64,
        /// SPS/PPS only in the SDP, never in band.
        #[arg(long)]
        sprop_only: bool,
        /// Ignore RTCP PLI/FIR keyframe requests.
        #[arg(long)]
        no_honour_pli: bool,
        /// Video codec of every camera; a camera URL query (?codec=h265)
        /// overrides it.
        #[arg(long, value_enum, default_value_t = SimCodec::H264)]
        codec: SimCodec,
        /// Also serve `GET /sessions` here (HTTP): the live RTSP sessions
        /// of each camera as JSON, `{"NAME": count}`; a camera without
        /// one is absent. For tests.
        #[arg(long)]
        status_listen: Option<SocketAddr>,
    },
    /// Print an Argon2id hash of a password, for `[[auth.user]]
    /// password_hash`. The password is read from standard input (asked
    /// twice, without echo, on a terminal).
    HashPassword,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProbeTransport {
    Tcp,
    Udp,
}

/// `camgate sim --codec`.
#[derive(Clone, Copy, ValueEnum)]
enum SimCodec {
    H264,
    H265,
}

fn main() -> ExitCode {
    camgate::sys::limit_malloc_arenas();
    let cli = Cli::parse();
    let log_format = cli.log_format.map(|f| match f {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    if let Some(warning) = camgate::service::init_logging(log_format) {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("camgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run {
        config: PathBuf::from("cameras.toml"),
    });
    runtime.block_on(async move {
        match command {
            Command::Run { config } => run(config).await,
            Command::Check { file } => check(file),
            Command::Probe {
                url,
                transport,
                seconds,
            } => probe(&url, transport, seconds).await,
            sim_command @ Command::Sim { .. } => sim(sim_command).await,
            Command::HashPassword => hash_password(),
        }
    })
}

async fn run(path: PathBuf) -> ExitCode {
    // The file and the cameras added through the API (see reload.rs).
    let (store, config) = match camgate::reload::ConfigStore::open(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("camgate: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let store = Some(std::sync::Arc::new(store));
    match camgate::gateway::run_with_store(config, store, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    match Config::load(&path) {
        Ok(c) => {
            print!("{}", c.summary());
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn probe(url: &str, transport: ProbeTransport, seconds: u64) -> ExitCode {
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("camgate probe: {}: not a URL: {e}", redact_url(url));
            return ExitCode::from(2);
        }
    };
    // sim://NAME probes an in-process simulated camera.
    let shutdown = CancellationToken::new();
    let target = if parsed.scheme() == "sim" {
        let server =
            match camgate::sim::SimServer::bind(([127, 0, 0, 1], 0).into(), Default::default())
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("camgate probe: cannot start the simulator: {e}");
                    return ExitCode::FAILURE;
                }
            };
        let addr = server.local_addr();
        tokio::spawn(server.run(shutdown.clone()));
        let name = parsed.host_str().unwrap_or("sim");
        // The query (`?codec=h265`, fault keys) goes to the simulator.
        let query = parsed.query().map_or(String::new(), |q| format!("?{q}"));
        url::Url::parse(&format!("rtsp://{addr}/{name}{query}"))
            .expect("a socket address, a host name and a query form a URL")
    } else if parsed.scheme() == "rtsp" || parsed.scheme() == "rtsps" {
        parsed
    } else {
        eprintln!(
            "camgate probe: {}: use rtsp://, rtsps:// or sim://",
            redact_url(url)
        );
        return ExitCode::from(2);
    };
    let carrier = match transport {
        ProbeTransport::Tcp => Carrier::Tcp,
        ProbeTransport::Udp => Carrier::Udp,
    };
    println!("probing {} for {seconds} s ...", redact_url(url));
    let result = camgate::probe::probe(&target, carrier, Duration::from_secs(seconds)).await;
    shutdown.cancel();
    match result {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("camgate probe: cannot play {}: {reason}", redact_url(url));
            ExitCode::FAILURE
        }
    }
}

async fn sim(command: Command) -> ExitCode {
    let Command::Sim {
        listen,
        username,
        password,
        seed,
        truncate,
        truncate_resend,
        garbage,
        stall_every_s,
        stall_ms,
        udp_loss,
        udp_reorder,
        udp_duplicate,
        ssrc_change_every_s,
        timestamp_jump_every_s,
        reboot_every_s,
        require_rr_s,
        sprop_only,
        no_honour_pli,
        codec,
        status_listen,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let faults = camgate::sim::Faults {
        seed,
        truncate,
        truncate_resend,
        garbage,
        stall_every_s,
        stall_ms,
        udp_loss,
        udp_reorder,
        udp_duplicate,
        ssrc_change_every_s,
        timestamp_jump_every_s,
        reboot_every_s,
        require_rr_s,
        sprop_only,
        honour_pli: !no_honour_pli,
    };
    if let Err(e) = faults.validate() {
        eprintln!("camgate sim: {e}");
        return ExitCode::from(2);
    }
    let options = camgate::sim::SimOptions {
        credentials: username
            .zip(password)
            .map(|(u, p)| camgate::credentials::Credentials::new(u, p)),
        faults,
        codec: match codec {
            SimCodec::H264 => camgate::camera::codec::VideoCodec::H264,
            SimCodec::H265 => camgate::camera::codec::VideoCodec::H265,
        },
        ..Default::default()
    };
    let server = match camgate::sim::SimServer::bind(listen, options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("camgate sim: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = match status_listen {
        Some(at) => {
            match camgate::sim::status::StatusServer::bind(at, server.live_sessions()).await {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("camgate sim: cannot listen on {at} (--status-listen): {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let addr = server.local_addr();
    println!("simulated cameras at rtsp://{addr}/NAME (any NAME); Ctrl-C stops");
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    match status {
        Some(status) => {
            println!("live sessions at http://{}/sessions", status.local_addr());
            tokio::join!(server.run(shutdown.clone()), status.run(shutdown));
        }
        None => server.run(shutdown).await,
    }
    ExitCode::SUCCESS
}

/// First SIGINT/SIGTERM cancels `shutdown` (graceful stop); a second exits at
/// once.
fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        tracing::info!("signal received: stopping (a second signal exits at once)");
        shutdown.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

/// `camgate hash-password`: reads a password from standard input and prints
/// its PHC string.
fn hash_password() -> ExitCode {
    use std::io::{BufRead, IsTerminal, Write};
    let terminal = std::io::stdin().is_terminal();
    let read = |prompt: &str| -> Option<String> {
        if terminal {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        // Without echo on a terminal; `stty` is everywhere camgate runs.
        let echo_off = terminal
            && std::process::Command::new("stty")
                .arg("-echo")
                .status()
                .is_ok_and(|s| s.success());
        let mut line = String::new();
        let result = std::io::stdin().lock().read_line(&mut line);
        if echo_off {
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
        }
        result.ok()?;
        Some(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let Some(password) = read("Password: ") else {
        eprintln!("camgate hash-password: cannot read the password");
        return ExitCode::FAILURE;
    };
    if password.is_empty() {
        eprintln!("camgate hash-password: the password is empty");
        return ExitCode::from(2);
    }
    if terminal && read("Again: ").as_deref() != Some(password.as_str()) {
        eprintln!("camgate hash-password: the passwords differ");
        return ExitCode::from(2);
    }
    match camgate::password::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camgate hash-password: {e}");
            ExitCode::FAILURE
        }
    }
}
