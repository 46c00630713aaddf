//! camgate's RTSP server under churn (issue 15): 100 RTSP clients over TCP
//! on one camera for 60 s, coming and going, half of them leaving without
//! TEARDOWN; afterwards nothing is left behind. Everything on 127.0.0.0/8
//! (clients spread over five loopback source addresses, under the
//! per-address connection cap).

mod common;
#[path = "common/rtsp.rs"]
mod rtsp;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rtsp::*;

/// Clients playing at once.
const CLIENTS: usize = 100;
/// Source addresses the clients connect from (20 each).
const SOURCES: [&str; 5] = [
    "127.0.0.21",
    "127.0.0.22",
    "127.0.0.23",
    "127.0.0.24",
    "127.0.0.25",
];

fn metric(http: u16, series: &str) -> f64 {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

fn sessions(http: u16) -> usize {
    let (status, body) = http_get(http, "/api/v1/cameras/demo/sessions");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .map_or(0, Vec::len)
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Sessions played (each began with a whole IDR picture).
    sessions: AtomicUsize,
    /// Ended with TEARDOWN.
    teardowns: AtomicUsize,
    /// Ended by a reset (SO_LINGER 0), without TEARDOWN.
    resets: AtomicUsize,
    /// Stopped reading, then closed without TEARDOWN.
    stalls: AtomicUsize,
    /// Video packets received.
    packets: AtomicU64,
}

/// A tiny deterministic generator for play times (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One client slot: plays, leaves one of four ways, plays again, until
/// `until`. Panics (failing the test) on a refusal, an answer other than
/// 200, or a session that does not start with an IDR.
fn client_slot(rtsp_port: u16, slot: usize, until: Instant, tally: Arc<Tally>) {
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/demo");
    let source = SOURCES[slot % SOURCES.len()];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (slot as u64 + 1);
    let mut cycle = 0usize;
    while Instant::now() < until {
        let stream = connect_from(source, rtsp_port);
        let mut c = RawRtsp::on(stream);
        c.play_tcp(&url, slot % 2 == 0);
        // The first picture is a keyframe: no picture ends before the
        // first IDR's last packet.
        let mut seen_idr = false;
        let mut packets = 0u64;
        loop {
            let f = c.read_frame().expect("media after PLAY");
            if f.channel != 0 {
                continue;
            }
            packets += 1;
            seen_idr |= h264_payload_has_idr(f.payload());
            if f.marker() {
                assert!(seen_idr, "slot {slot}: the first picture was no IDR");
                break;
            }
        }
        tally.sessions.fetch_add(1, Ordering::Relaxed);
        let play_for = Duration::from_millis(1000 + next(&mut rng) % 3000);
        let end = Instant::now() + play_for;
        while Instant::now() < end {
            c.read_frame().expect("media while playing");
            packets += 1;
        }
        tally.packets.fetch_add(packets, Ordering::Relaxed);
        match (slot + cycle) % 4 {
            0 | 1 => {
                let r = c.request("TEARDOWN", &url, &[]);
                assert_eq!(r.status, 200, "slot {slot}: TEARDOWN {r:?}");
                tally.teardowns.fetch_add(1, Ordering::Relaxed);
            }
            2 => {
                // Gone at once: a reset, no TEARDOWN.
                let s = socket2::SockRef::from(&c.stream);
                let _ = s.set_linger(Some(Duration::ZERO));
                tally.resets.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                // Stops reading (a client that hangs), then its socket closes.
                std::thread::sleep(Duration::from_secs(2));
                tally.stalls.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(c);
        cycle += 1;
    }
}

/// Runs `CLIENTS` slots for `run`; the tally.
fn churn(rtsp_port: u16, run: Duration) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + run;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|slot| {
            let tally = tally.clone();
            std::thread::spawn(move || client_slot(rtsp_port, slot, until, tally))
        })
        .collect();
    let mut failed = Vec::new();
    for (slot, t) in threads.into_iter().enumerate() {
        if t.join().is_err() {
            failed.push(slot);
        }
    }
    assert!(failed.is_empty(), "client slots failed: {failed:?}");
    tally
}

/// 100 RTSP clients over TCP on one camera for 60 s, each playing 1-4 s
/// and coming back, half leaving with TEARDOWN and half without (a reset,
/// or a client that stops reading and then closes): every session starts
/// at an IDR and no client is refused. Afterwards the camera has no
/// consumer, the gateway's tokio tasks are back to the idle count, and RSS
/// is within 5 % of its value after a 40 s warm-up of the same churn.
#[test]
fn a_hundred_clients_churn_for_a_minute_and_leave_nothing_behind() {
    let dir = temp_dir();
    let (http, rtsp_port) = (free_tcp_port(), free_tcp_port());
    let udp = free_udp_range(8);
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[rtsp_server]
listen = "127.0.0.1:{rtsp_port}"
udp_port_range = "{}-{}"
# Above the 100 clients: a client that reconnects at once may find its
# previous session not yet reaped.
max_rtsp_clients_per_camera = 150

[[camera]]
id = "demo"
url = "sim://demo"
"#,
        udp.0, udp.1
    );
    let mut gw = spawn_gateway_checked(dir.path(), &toml, http);
    let pid = gw.child.id();
    wait_state(http, "demo", "playing", Duration::from_secs(15));
    wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", rtsp_port)).is_ok()
    });
    let reconnects = |v: &serde_json::Value| v["stats"]["reconnects"].as_u64().unwrap();
    let reconnects_before = reconnects(&camera_json(http, "demo"));

    // Warm-up at the same concurrency, so the allocator reaches its
    // working size before the baseline. Measured before interleaved writes
    // were cut into 60 KiB pieces (e180614): after a 20 s warm-up RSS grew
    // 7 % over the minute, after 40 s 3.3 % and 5.8 % (heap fragmentation);
    // since then 0.4 % and 1.2 %.
    churn(rtsp_port, Duration::from_secs(40));
    wait_for(Duration::from_secs(30), || sessions(http) == 0);
    std::thread::sleep(Duration::from_secs(1));
    let tasks_before = metric(http, "camgate_tokio_tasks");
    let rss_before = rss_kib(pid);

    // The minute, with the number of sessions sampled half-way.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(sessions(http), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let started = Instant::now();
    let tally = churn(rtsp_port, Duration::from_secs(60));
    let ran = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let left = Instant::now();
    wait_for(Duration::from_secs(30), || sessions(http) == 0);
    let consumers_gone = left.elapsed();
    let mut tasks_after = 0.0;
    wait_for(Duration::from_secs(15), || {
        tasks_after = metric(http, "camgate_tokio_tasks");
        tasks_after <= tasks_before
    });
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_kib(pid);
    let growth = rss_after as f64 / rss_before as f64 - 1.0;
    let cam = camera_json(http, "demo");
    eprintln!(
        "{ran:?}: {} sessions ({} TEARDOWN, {} reset, {} stalled), {} video packets, at most {} at once; \
         consumers gone {consumers_gone:?} after; tasks {tasks_before} -> {tasks_after}; \
         RSS {rss_before} -> {rss_after} KiB ({:+.1} %)",
        tally.sessions.load(Ordering::Relaxed),
        tally.teardowns.load(Ordering::Relaxed),
        tally.resets.load(Ordering::Relaxed),
        tally.stalls.load(Ordering::Relaxed),
        tally.packets.load(Ordering::Relaxed),
        peak.load(Ordering::Relaxed),
        growth * 100.0
    );
    let sessions_played = tally.sessions.load(Ordering::Relaxed);
    assert!(
        sessions_played >= 4 * CLIENTS,
        "only {sessions_played} sessions in 60 s"
    );
    let without = tally.resets.load(Ordering::Relaxed) + tally.stalls.load(Ordering::Relaxed);
    assert!(
        without * 10 >= sessions_played * 4,
        "{without} of {sessions_played} left without TEARDOWN"
    );
    assert!(
        peak.load(Ordering::Relaxed) >= CLIENTS * 8 / 10,
        "at most {} sessions at once",
        peak.load(Ordering::Relaxed)
    );
    assert_eq!(metric(http, "camgate_rtsp_clients{camera=\"demo\"}"), 0.0);
    assert_eq!(cam["state"], "playing");
    assert_eq!(
        reconnects(&cam),
        reconnects_before,
        "the camera reconnected"
    );
    assert!(growth < 0.05, "RSS grew {:.1} %", growth * 100.0);
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}
