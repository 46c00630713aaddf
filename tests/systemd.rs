//! Running under systemd: the unit file passes `systemd-analyze verify`, and
//! the binary speaks the sd_notify protocol (READY=1 once serving, WATCHDOG=1
//! at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM) to a socket the test
//! plays systemd with. Also the log formats meant for the journal and for
//! log shippers.

mod common;

use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const UNIT: &str = include_str!("../systemd/camgate.service");

/// `systemd-analyze verify` checks that ExecStart= names an executable
/// that exists, and `/usr/local/bin/camgate` is not installed on a build
/// machine. So the unit is verified as a copy whose ExecStart= points at the
/// binary under test; every other line is the file as shipped.
#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = temp_dir();
    let unit = UNIT.replace(
        "ExecStart=/usr/local/bin/camgate ",
        &format!("ExecStart={} ", camgate_bin()),
    );
    assert_ne!(unit, UNIT, "ExecStart= was not rewritten");
    let path = dir.path().join("camgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect(
            "systemd-analyze is missing: run the tests with scripts/test, which installs systemd",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // Warnings about our own unit count as failures too.
    assert!(
        !text.contains("camgate.service"),
        "systemd-analyze verify warned:\n{text}"
    );
}

/// The settings the issue asks for are there (verify checks syntax, not
/// intent).
#[test]
fn unit_has_the_required_settings() {
    let lines: Vec<&str> = UNIT.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "Restart=on-failure",
        "User=camgate",
        "EnvironmentFile=-/etc/camgate/camgate.env",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "UMask=0077",
    ] {
        assert!(lines.contains(&want), "camgate.service lacks {want:?}");
    }
    let sysusers = include_str!("../systemd/camgate.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u camgate ")));
}

/// The HTTP listener on `http`; WebRTC on any free UDP port, as tests run
/// side by side.
fn server(http: u16) -> String {
    format!("[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n")
}

/// One notification and when it arrived.
struct Note {
    at: Instant,
    text: String,
}

/// Plays systemd: a datagram socket in `dir` whose messages go to a channel.
fn notify_socket(dir: &Path) -> (String, mpsc::Receiver<Note>) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let note = Note {
                at: Instant::now(),
                text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            };
            if tx.send(note).is_err() {
                break;
            }
        }
    });
    (path.to_str().unwrap().to_owned(), rx)
}

/// Waits for a notification containing `line`, returning it and every one
/// before it.
fn wait_note(rx: &mpsc::Receiver<Note>, line: &str, limit: Duration) -> (Note, Vec<Note>) {
    let deadline = Instant::now() + limit;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let note = rx.recv_timeout(left).unwrap_or_else(|_| {
            let seen: Vec<&str> = before.iter().map(|n: &Note| n.text.as_str()).collect();
            panic!("no {line:?} within {limit:?}; got {seen:?}")
        });
        if note.text.lines().any(|l| l == line) {
            return (note, before);
        }
        before.push(note);
    }
}

#[test]
fn notify_ready_watchdog_stopping() {
    let dir = temp_dir();
    let (socket, rx) = notify_socket(dir.path());
    let http = free_tcp_port();
    let config = dir.path().join("cameras.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[camera]]\nid = \"demo\"\nurl = \"sim://demo\"\n",
            server(http)
        ),
    )
    .unwrap();
    let log = dir.path().join("camgate.log");
    let child = Command::new(camgate_bin())
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut proc = Proc { child, log };

    let (ready, before) = wait_note(&rx, "READY=1", Duration::from_secs(20));
    // Serving when it says so: the listener answers at once, with the
    // camera already started.
    assert!(
        TcpStream::connect(("127.0.0.1", http)).is_ok(),
        "READY=1 before the HTTP listener was bound"
    );
    let cameras = camera_json(http, "demo");
    assert_ne!(cameras["state"], "stopped", "{cameras}");
    assert!(
        before.iter().all(|n| !n.text.contains("WATCHDOG=1")),
        "watchdog pings before READY=1"
    );

    // WatchdogSec=2 s: a ping every second.
    let mut pings = Vec::new();
    let window_end = ready.at + Duration::from_secs(3);
    while let Ok(note) = rx.recv_timeout(window_end.saturating_duration_since(Instant::now())) {
        if note.text.lines().any(|l| l == "WATCHDOG=1") {
            pings.push(note.at);
        }
    }
    assert!(
        pings.len() >= 2,
        "{} WATCHDOG=1 within 3 s of READY=1, expected at least 2",
        pings.len()
    );
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < Duration::from_millis(1900),
            "watchdog pings {gap:?} apart with WATCHDOG_USEC = 2 s"
        );
    }

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(proc.child.id().to_string())
        .status();
    wait_note(&rx, "STOPPING=1", Duration::from_secs(5));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = proc.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "camgate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}: {}", proc.log_text());
}

/// Without NOTIFY_SOCKET nothing is sent and nothing fails (a shell run).
#[test]
fn no_notify_socket_is_fine() {
    let dir = temp_dir();
    let http = free_tcp_port();
    let toml = server(http);
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
    assert!(
        !gw.log_text().contains("cannot notify"),
        "{}",
        gw.log_text()
    );
}

/// Runs the gateway briefly with `args`/`envs`, its stderr in a file;
/// returns the log.
fn run_briefly(args: &[&str], envs: &[(&str, String)], journal: bool) -> String {
    let dir = temp_dir();
    let http = free_tcp_port();
    let config = dir.path().join("cameras.toml");
    std::fs::write(&config, server(http)).unwrap();
    let log = dir.path().join("camgate.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(camgate_bin());
    cmd.args(["run", "--config", config.to_str().unwrap()])
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .env_remove("CAMGATE_LOG_FORMAT")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    if journal {
        // What systemd sets when stderr is its journal stream: the device
        // and inode of that stream, here the log file.
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().unwrap();
        cmd.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.stderr(file).spawn().unwrap();
    let mut proc = Proc {
        child,
        log: log.clone(),
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "camgate did not start: {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(proc.terminate(Duration::from_secs(5)).is_some());
    proc.log_text()
}

#[test]
fn json_logs_when_asked() {
    for (args, envs) in [
        (vec!["--log-format", "json"], vec![]),
        (vec![], vec![("CAMGATE_LOG_FORMAT", "json".to_string())]),
    ] {
        let text = run_briefly(&args, &envs, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 2, "{text}");
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                v["timestamp"].is_string() && v["level"].is_string(),
                "{line}"
            );
        }
        assert!(text.contains("camgate is running"), "{text}");
    }
}

#[test]
fn journal_lines_have_priorities_and_no_timestamps() {
    let text = run_briefly(&[], &[], true);
    let running = text
        .lines()
        .find(|l| l.contains("camgate is running"))
        .unwrap_or_else(|| panic!("{text}"));
    // "<6> INFO camgate::gateway: camgate is running ...": journald takes
    // the priority and adds its own timestamp.
    assert!(running.starts_with("<6>"), "{running}");
    assert!(!running.contains('\x1b'), "{running}");
    let year = running.get(3..8).unwrap_or_default();
    assert!(
        !year.trim_start().starts_with("20"),
        "timestamp in a journal line: {running}"
    );
    // Not on a journal: ordinary lines with timestamps, no prefix.
    let text = run_briefly(&[], &[], false);
    assert!(text.lines().all(|l| !l.starts_with('<')), "{text}");
}
