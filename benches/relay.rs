//! Relay bench (issue 13): N H.264 cameras at ~4 Mbit/s over RTSP/TCP →
//! RTP/UDP sinks on loopback, by camgate (one process for all N), by one
//! `ffmpeg -c copy` per camera, and by one GStreamer pipeline per camera
//! (`rtspsrc ! rtph264depay ! rtph264pay ! udpsink`), measured in the same
//! run.
//!
//! - The cameras: GStreamer's RTSP server (tests/support/gst_rtsp_file_loop.py,
//!   one process, N mounts) looping a 1280x720 30 fps clip (GOP 2 s,
//!   ~4 Mbit/s, no B-frames) that ffmpeg encodes once at start, each picture
//!   paced by the clock; nothing is encoded while measuring.
//! - The sinks: one UDP socket per camera in this process, counting packets
//!   and bytes. Every sink must receive at least 70 % of the clip's bit rate
//!   during the window, or the smoke pass fails (so the bench never measures
//!   an idle relay); under `--bench` the slowest sink is printed.
//!
//! Each point: the relays start; once every sink receives, 3 s warm-up,
//! then a 10 s window in which the relays' CPU (user + system,
//! /proc ticks, all their processes) and RSS are read. The system part is
//! printed apart too, and a "floor" line: ffmpeg's whole cost over
//! camgate's system time, the most camgate's ratio could reach if its own
//! code cost nothing (both do the same kernel work per packet).
//!
//! `cargo bench --bench relay` (N = 10, 100), or
//! `CAMGATE_RELAY_N=10,50 cargo bench --bench relay`. `cargo test` (no
//! `--bench` argument) runs a two-camera smoke pass with a 2 s window.
//! `CAMGATE_RELAY_ONLY=camgate` skips the baselines (for a profiler);
//! `CAMGATE_RELAY_OTHER=path/to/camgate` also measures another build of
//! camgate, right after this one (a before and after in one run). A point
//! whose sinks got under 70 % (or over 1/0.7) of the clip's rate, when the
//! machine cannot keep up with the cameras or the relays, is marked not
//! valid.

mod common;

use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    camera_tools_missing, cameras_playing, clock_ticks, cpu_ticks_split, free_tcp_port,
    load_average, make_camera_clip, ready_port, rss_kib, wait, Proc, TempDir,
};

const CAMERAS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/gst_rtsp_file_loop.py"
);
/// The clip's frame rate.
const FPS: u32 = 30;
/// rtph264pay's default MTU (1400) less the RTP header: camgate sends the
/// same packets as the GStreamer relay.
const PAYLOAD_SIZE: usize = 1388;
/// A sink below this share of the clip's bit rate fails the smoke pass.
const MIN_SHARE: f64 = 0.7;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let measure = Duration::from_secs(if bench { 10 } else { 2 });
    let warm_up = Duration::from_secs(if bench { 3 } else { 1 });
    if let Some(why) = camera_tools_missing(true) {
        // Never a silent skip: CI installs these (scripts/deps).
        panic!("relay bench: {why}");
    }
    let default_n = if bench { "10,100" } else { "2" };
    let ns: Vec<usize> = std::env::var("CAMGATE_RELAY_N")
        .unwrap_or_else(|_| default_n.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let only_camgate = std::env::var("CAMGATE_RELAY_ONLY").is_ok_and(|v| v == "camgate");
    let bin = env!("CARGO_BIN_EXE_camgate");
    let ticks = clock_ticks();
    let dir = TempDir::new("relay");
    let clip = dir.0.join("clip.h264");
    make_camera_clip(&clip, FPS);
    let clip_secs = 4.0;
    let clip_kbit = std::fs::metadata(&clip).unwrap().len() as f64 * 8.0 / 1000.0 / clip_secs;
    println!(
        "relay bench: clip 1280x720 {FPS} fps {:.2} Mbit/s, {} s window, {} clock ticks/s, load {:.1}",
        clip_kbit / 1000.0,
        measure.as_secs(),
        ticks,
        load_average()
    );
    println!(
        "{:>8} {:>5} {:>8} {:>12} {:>12} {:>10} {:>11} {:>12} {:>14}",
        "relay",
        "N",
        "cpu %",
        "cpu %/camera",
        "sys %/camera",
        "RSS MiB",
        "KiB/camera",
        "sink Mbit/s",
        "slowest sink"
    );
    for &n in &ns {
        let mut cameras = Proc(
            Command::new("/usr/bin/python3")
                .arg(CAMERAS)
                .arg(&clip)
                .args(["--mounts", &n.to_string(), "--fps", &FPS.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs"),
        );
        let port = ready_port(&mut cameras.0, Duration::from_secs(30)).expect("cameras ready");
        let url = |i: usize| format!("rtsp://127.0.0.1:{port}/c{i}");
        let sinks = Sinks::start(n);
        let check = |what: &str, r: &Rates| {
            let floor = clip_kbit * MIN_SHARE;
            if !bench {
                assert!(
                    r.slowest_kbit >= floor,
                    "{what}: a sink got {:.0} kbit/s, under {floor:.0} (mean {:.0})",
                    r.slowest_kbit,
                    r.mean_kbit
                );
            }
        };

        // camgate: one process relays all N.
        let http = free_tcp_port();
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n[defaults]\nrtp_payload_size = {PAYLOAD_SIZE}\n"
        );
        for (i, p) in sinks.ports.iter().enumerate() {
            toml += &format!(
                "[[camera]]\nid = \"c{i}\"\nurl = \"{}\"\ntransport = \"tcp\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:{p}\"\n",
                url(i)
            );
        }
        let cfg = dir.0.join(format!("cameras-{n}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let camgate = |bin: &str, what: &str| {
            let gw = Proc(
                Command::new(bin)
                    .args(["run", "--config", cfg.to_str().unwrap()])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            wait(Duration::from_secs(15), || {
                TcpStream::connect(("127.0.0.1", http)).is_ok()
            });
            wait(Duration::from_secs(60), || cameras_playing(http) == n);
            sinks.wait_flowing(Duration::from_secs(60));
            std::thread::sleep(warm_up);
            let (cpu, rss, rates) = measure_window(&[gw.0.id()], ticks, measure, &sinks);
            check(what, &rates);
            report(what, n, cpu, rss, &rates, clip_kbit);
            cpu
        };
        let camgate_cpu = camgate(bin, "camgate");
        // Another camgate build in the same run (a before and after).
        if let Ok(other) = std::env::var("CAMGATE_RELAY_OTHER") {
            let other_cpu = camgate(&other, "other");
            println!(
                "{:>8} {n:>5} other/camgate {:.2}x (CPU per camera)",
                "ratio",
                other_cpu.total() / camgate_cpu.total()
            );
        }

        if !only_camgate {
            // A relay process per camera, measured as camgate is.
            let baseline = |what: &str, relay: &dyn Fn(usize) -> Command| {
                let procs: Vec<Proc> = (0..n)
                    .map(|i| {
                        Proc(
                            relay(i)
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap(),
                        )
                    })
                    .collect();
                sinks.wait_flowing(Duration::from_secs(60));
                std::thread::sleep(warm_up);
                let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
                let (cpu, rss, rates) = measure_window(&pids, ticks, measure, &sinks);
                check(what, &rates);
                report(what, n, cpu, rss, &rates, clip_kbit);
                cpu
            };
            // ffmpeg: one stream copy per camera.
            let ffmpeg_cpu = baseline("ffmpeg", &|i| {
                let mut c = Command::new("ffmpeg");
                c.args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
                    .arg(url(i))
                    .args(["-c", "copy", "-f", "rtp"])
                    .arg(format!("rtp://127.0.0.1:{}", sinks.ports[i]));
                c
            });
            // GStreamer: one pipeline per camera, depayloaded and payloaded
            // again as camgate does.
            let gst_cpu = baseline("gst", &|i| {
                let mut c = Command::new("gst-launch-1.0");
                c.arg("-q")
                    .arg("rtspsrc")
                    .arg(format!("location={}", url(i)))
                    .args(["protocols=tcp", "latency=0", "!", "rtph264depay", "!"])
                    .args(["rtph264pay", "config-interval=-1", "pt=96", "!", "udpsink"])
                    .arg("host=127.0.0.1")
                    .arg(format!("port={}", sinks.ports[i]))
                    .args(["sync=false", "async=false"]);
                c
            });
            println!(
                "{:>8} {n:>5} ffmpeg/camgate {:.2}x, gst/camgate {:.2}x (CPU per camera)",
                "ratio",
                ffmpeg_cpu.total() / camgate_cpu.total(),
                gst_cpu.total() / camgate_cpu.total()
            );
            // Both relays do the same kernel work per packet (the TCP
            // receive, the UDP send and, on loopback, the sinks' delivery):
            // however little camgate's own code costs, its ratio to ffmpeg
            // stays under ffmpeg's whole cost over camgate's system time.
            println!(
                "{:>8} {n:>5} kernel: camgate's system time alone {:.3} % per camera, \
                 ffmpeg's {:.3} %; ffmpeg's whole cost over camgate's system time {:.2}x",
                "floor",
                camgate_cpu.system * 100.0 / n as f64,
                ffmpeg_cpu.system * 100.0 / n as f64,
                ffmpeg_cpu.total() / camgate_cpu.system
            );
        }
        sinks.stop();
        drop(cameras);
    }
}

/// CPU over a window, in fractions of one core.
#[derive(Clone, Copy)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// What the sinks received during a window, per camera.
struct Rates {
    mean_kbit: f64,
    slowest_kbit: f64,
    packets_per_sec: f64,
}

fn report(what: &str, n: usize, cpu: Cpu, rss_kib: u64, r: &Rates, clip_kbit: f64) {
    if r.slowest_kbit < clip_kbit * MIN_SHARE || r.mean_kbit > clip_kbit / MIN_SHARE {
        println!(
            "{what:>8} {n:>5} NOT A VALID POINT: the sinks did not get the clip's rate (below)"
        );
    }
    println!(
        "{what:>8} {n:>5} {:>8.1} {:>12.3} {:>12.3} {:>10.1} {:>11.0} {:>12.2} {:>9.2} Mbit/s  ({:.0} packets/s per camera)",
        cpu.total() * 100.0,
        cpu.total() * 100.0 / n as f64,
        cpu.system * 100.0 / n as f64,
        rss_kib as f64 / 1024.0,
        rss_kib as f64 / n as f64,
        r.mean_kbit / 1000.0,
        r.slowest_kbit / 1000.0,
        r.packets_per_sec
    );
}

/// CPU (fraction of one core) and total RSS (KiB) of `pids`, and the sinks'
/// rates, over `window`.
fn measure_window(pids: &[u32], ticks: u64, window: Duration, sinks: &Sinks) -> (Cpu, u64, Rates) {
    let split = || {
        pids.iter()
            .map(|p| cpu_ticks_split(*p))
            .fold((0, 0), |(u, s), (pu, ps)| (u + pu, s + ps))
    };
    let cpu0 = split();
    let (bytes0, packets0) = sinks.snapshot();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let cpu1 = split();
    let (bytes1, packets1) = sinks.snapshot();
    let secs = t0.elapsed().as_secs_f64();
    let rss = pids.iter().map(|p| rss_kib(*p)).sum();
    let kbit: Vec<f64> = bytes0
        .iter()
        .zip(&bytes1)
        .map(|(a, b)| (b - a) as f64 * 8.0 / 1000.0 / secs)
        .collect();
    let packets: u64 = packets0.iter().zip(&packets1).map(|(a, b)| b - a).sum();
    let n = kbit.len() as f64;
    let rates = Rates {
        mean_kbit: kbit.iter().sum::<f64>() / n,
        slowest_kbit: kbit.iter().copied().fold(f64::INFINITY, f64::min),
        packets_per_sec: packets as f64 / secs / n,
    };
    let fraction = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks as f64 / secs;
    let cpu = Cpu {
        user: fraction(cpu0.0, cpu1.0),
        system: fraction(cpu0.1, cpu1.1),
    };
    (cpu, rss, rates)
}

/// UDP sinks that drain and count what they receive, one per camera.
struct Sinks {
    ports: Vec<u16>,
    /// Bytes and packets received, per sink.
    counts: Arc<Vec<(AtomicU64, AtomicU64)>>,
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
                socket2::SockRef::from(&s)
                    .set_recv_buffer_size(1 << 20)
                    .unwrap();
                sockets.push(s);
            }
        }
        let ports = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        let counts: Arc<Vec<(AtomicU64, AtomicU64)>> = Arc::new(
            (0..n)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (counts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !st.load(Relaxed) {
                let mut got = false;
                for (s, (bytes, packets)) in sockets.iter().zip(c.iter()) {
                    while let Ok(len) = s.recv(&mut buf) {
                        bytes.fetch_add(len as u64, Relaxed);
                        packets.fetch_add(1, Relaxed);
                        got = true;
                    }
                }
                if !got {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Sinks {
            ports,
            counts,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (at most `timeout`) until every sink has received something
    /// in the last half second: all relays flowing.
    fn wait_flowing(&self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let (before, _) = self.snapshot();
            std::thread::sleep(Duration::from_millis(500));
            let (after, _) = self.snapshot();
            if before.iter().zip(&after).all(|(a, b)| b > a) {
                return;
            }
        }
        println!("  (not every sink flowing after {} s)", timeout.as_secs());
    }

    /// Bytes and packets received so far, per sink.
    fn snapshot(&self) -> (Vec<u64>, Vec<u64>) {
        self.counts
            .iter()
            .map(|(b, p)| (b.load(Relaxed), p.load(Relaxed)))
            .unzip()
    }

    fn stop(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
