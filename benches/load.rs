//! Load bench: N simulated cameras (~1.8 Mbit/s each, served by a separate
//! `camgate sim` process) → one camgate → plain RTP to sinks on loopback.
//! Reports camgate's CPU and RSS per camera, and the same figures for the
//! baseline the gateway replaces, one `ffmpeg -c copy` per camera, measured
//! in the same run.
//!
//! `cargo bench --bench load` (N = 10, 100, 500), or
//! `CAMGATE_LOAD_N=10,50 cargo bench --bench load`. Run a release build:
//! cargo bench builds the binary with the bench profile.

mod common;

use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cameras_playing, clock_ticks, cpu_ticks, free_tcp_port, rss_kib, Proc};

/// Measurement time per point; `cargo test` (no `--bench` argument) runs a
/// two-camera smoke pass with a short measurement instead.
static MEASURE_SECS: AtomicU64 = AtomicU64::new(10);

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        MEASURE_SECS.store(2, Ordering::Relaxed);
    }
    // criterion-style filters passed by `cargo bench` are ignored.
    let default_n = if bench { "10,100,500" } else { "2" };
    let ns: Vec<usize> = std::env::var("CAMGATE_LOAD_N")
        .unwrap_or_else(|_| default_n.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bin = env!("CARGO_BIN_EXE_camgate");
    let ticks = clock_ticks();
    println!(
        "load bench: {} s measurement per point, {} clock ticks/s",
        measure_time().as_secs(),
        ticks
    );
    println!(
        "{:>12} {:>5} {:>10} {:>14} {:>14} {:>12} {:>10}",
        "what", "N", "cpu %", "cpu %/camera", "cameras/core", "RSS MiB", "KiB/camera"
    );
    for &n in &ns {
        let sim_port = free_tcp_port();
        let mut sim = Proc(
            Command::new(bin)
                .args(["sim", "--listen", &format!("127.0.0.1:{sim_port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait(|| TcpStream::connect(("127.0.0.1", sim_port)).is_ok());
        let sinks = Sinks::start(n);

        let http = free_tcp_port();
        let mut toml = format!("[server]\nlisten = \"127.0.0.1:{http}\"\n");
        for (i, port) in sinks.ports.iter().enumerate() {
            toml += &format!(
                "[[camera]]\nid = \"c{i}\"\nurl = \"rtsp://127.0.0.1:{sim_port}/c{i}?audio=0\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:{port}\"\n"
            );
        }
        let dir = std::env::temp_dir().join(format!("camgate-load-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("cameras.toml");
        std::fs::write(&cfg, toml).unwrap();
        let gw = Proc(
            Command::new(bin)
                .args(["run", "--config", cfg.to_str().unwrap()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait(|| TcpStream::connect(("127.0.0.1", http)).is_ok());
        let start = Instant::now();
        while cameras_playing(http) < n && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let up = cameras_playing(http);
        assert_eq!(up, n, "only {up} of {n} cameras playing");
        std::thread::sleep(Duration::from_secs(2));
        let (cpu, rss) = measure(&[gw.0.id()], ticks, &sinks.bytes);
        let mbit = sinks.rate_mbit.clone();
        report("camgate", n, cpu, rss);
        println!(
            "{:>12} {:>5} playing {up}/{n}, sinks got {:.1} Mbit/s per camera",
            "",
            n,
            mbit.load(Ordering::Relaxed) as f64 / 1000.0 / n as f64
        );
        drop(gw);

        // Baseline: one ffmpeg per camera, stream copy to RTP.
        if bench
            && n <= 100
            && Command::new("ffmpeg")
                .arg("-version")
                .stdout(Stdio::null())
                .status()
                .is_ok()
        {
            let procs: Vec<Proc> = sinks
                .ports
                .iter()
                .enumerate()
                .map(|(i, port)| {
                    Proc(
                        Command::new("ffmpeg")
                            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
                            .arg(format!("rtsp://127.0.0.1:{sim_port}/f{i}?audio=0"))
                            .args(["-c", "copy", "-f", "rtp"])
                            .arg(format!("rtp://127.0.0.1:{port}"))
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap(),
                    )
                })
                .collect();
            std::thread::sleep(Duration::from_secs(5));
            let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
            let (cpu, rss) = measure(&pids, ticks, &sinks.bytes);
            report("ffmpeg each", n, cpu, rss);
            drop(procs);
        }
        sinks.stop();
        sim.0.kill().ok();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn measure_time() -> Duration {
    Duration::from_secs(MEASURE_SECS.load(Ordering::Relaxed))
}

fn report(what: &str, n: usize, cpu: f64, rss_kib: u64) {
    let per = cpu / n as f64;
    println!(
        "{what:>12} {n:>5} {:>10.1} {:>14.3} {:>14.0} {:>12.1} {:>10.0}",
        cpu * 100.0,
        per * 100.0,
        if per > 0.0 { 1.0 / per } else { f64::INFINITY },
        rss_kib as f64 / 1024.0,
        rss_kib as f64 / n as f64
    );
}

/// CPU (fraction of one core) and total RSS (KiB) of `pids` over the measurement time.
fn measure(pids: &[u32], ticks: u64, _bytes: &AtomicU64) -> (f64, u64) {
    let cpu0: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let t0 = Instant::now();
    std::thread::sleep(measure_time());
    let cpu1: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let secs = t0.elapsed().as_secs_f64();
    let rss = pids.iter().map(|p| rss_kib(*p)).sum();
    ((cpu1 - cpu0) as f64 / ticks as f64 / secs, rss)
}

fn wait(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(15), "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// UDP sinks that drain and count what they receive, one per camera.
struct Sinks {
    ports: Vec<u16>,
    bytes: Arc<AtomicU64>,
    rate_mbit: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sinks {
    fn start(n: usize) -> Sinks {
        let mut sockets = Vec::new();
        while sockets.len() < n {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            // Multiples of 4: no camera's video port is another's audio port (+2).
            if s.local_addr().unwrap().port() % 4 == 0 {
                s.set_nonblocking(true).unwrap();
                sockets.push(s);
            }
        }
        let ports = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        let bytes = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, r, st) = (bytes.clone(), rate.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut window = (Instant::now(), 0u64);
            while !st.load(Ordering::Relaxed) {
                let mut got = false;
                for s in &sockets {
                    while let Ok(len) = s.recv(&mut buf) {
                        b.fetch_add(len as u64, Ordering::Relaxed);
                        window.1 += len as u64;
                        got = true;
                    }
                }
                if window.0.elapsed() >= Duration::from_secs(2) {
                    r.store(
                        window.1 * 8 / 1000 / window.0.elapsed().as_secs().max(1),
                        Ordering::Relaxed,
                    );
                    window = (Instant::now(), 0);
                }
                if !got {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Sinks {
            ports,
            bytes,
            rate_mbit: rate,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
