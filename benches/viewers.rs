//! Viewer bench: one simulated ~1.9 Mbit/s camera → camgate → N WebRTC
//! viewers made with the `webrtc` crate in this process, on loopback only
//! (camgate's UDP socket is bound to 127.0.0.1 and the viewers gather
//! loopback candidates only). Reports camgate's CPU and RSS per viewer,
//! against the same gateway with no viewer measured in the same run (the
//! baseline: ingest alone).
//!
//! `cargo bench --bench viewers` (N = 10, 50, 200), or
//! `CAMGATE_VIEWERS_N=10,50 cargo bench --bench viewers`. Under `cargo test`
//! it runs a two-viewer smoke pass.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{clock_ticks, cpu_ticks, free_tcp_port, rss_kib, Proc};

use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let measure = Duration::from_secs(if bench { 10 } else { 2 });
    let default_n = if bench { "10,50,200" } else { "2" };
    let ns: Vec<usize> = std::env::var("CAMGATE_VIEWERS_N")
        .unwrap_or_else(|_| default_n.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let ticks = clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("viewer bench: {} s per point", measure.as_secs());
    println!(
        "{:>8} {:>8} {:>14} {:>14} {:>10} {:>12} {:>12} {:>12}",
        "viewers",
        "cpu %",
        "cpu %/viewer",
        "viewers/core",
        "RSS MiB",
        "KiB/viewer",
        "sent pkt/s",
        "recv pkt/s"
    );
    for &n in &ns {
        let dir = std::env::temp_dir().join(format!("camgate-viewers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let http = free_tcp_port();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\nmax_whep_negotiations = 64\n\n\
             [webrtc]\nudp_listen = \"127.0.0.1:0\"\nmax_viewers = 1000\nmax_viewers_per_camera = 1000\n\n\
             [[camera]]\nid = \"cam\"\nurl = \"sim://cam?audio=0\"\n"
        );
        let path = dir.join("cameras.toml");
        std::fs::write(&path, toml).unwrap();
        let gw = Proc(
            Command::new(env!("CARGO_BIN_EXE_camgate"))
                .args(["run", "--config", path.to_str().unwrap()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = gw.0.id();
        wait(|| playing(http));
        std::thread::sleep(Duration::from_secs(1));
        // Baseline: the camera with no viewer.
        let (cpu0, rss0) = sample(pid, ticks, measure);
        let received = Arc::new(AtomicU64::new(0));
        let pcs = rt.block_on(async {
            let mut pcs = Vec::new();
            for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
                let mut handles = Vec::new();
                for _ in chunk {
                    handles.push(tokio::spawn(connect(http, received.clone())));
                }
                for h in handles {
                    pcs.push(h.await.unwrap());
                }
            }
            pcs
        });
        std::thread::sleep(Duration::from_secs(3));
        let r0 = received.load(Ordering::Relaxed);
        let s0 = sent_packets(http);
        let t0 = Instant::now();
        let (cpu, rss) = sample(pid, ticks, measure);
        let secs = t0.elapsed().as_secs_f64();
        let pps = (received.load(Ordering::Relaxed) - r0) as f64 / secs / n as f64;
        let sent_pps = (sent_packets(http) - s0) / secs / n as f64;
        let per = (cpu - cpu0).max(0.0) / n as f64;
        println!(
            "{:>8} {:>8.1} {:>14.3} {:>14.0} {:>10.1} {:>12.0} {:>12.0} {:>12.0}",
            n,
            cpu * 100.0,
            per * 100.0,
            if per > 0.0 { 1.0 / per } else { f64::INFINITY },
            rss as f64 / 1024.0,
            rss.saturating_sub(rss0) as f64 / n as f64,
            sent_pps,
            pps
        );
        println!(
            "{:>8} {:>8.1} {:>14} {:>14} {:>10.1}   (baseline: no viewer)",
            0,
            cpu0 * 100.0,
            "",
            "",
            rss0 as f64 / 1024.0
        );
        // The camera sends about 250 packets/s; each viewer must get them
        // (the smoke pass checks; at scale the receiving side, in this
        // process, may be the one that cannot keep up: both rates are shown).
        if !bench {
            assert!(pps > 100.0, "viewers received {pps:.0} packets/s each");
        }
        rt.block_on(async {
            for pc in pcs {
                let _ = pc.close().await;
            }
        });
        drop(gw);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// One viewer; counts the RTP packets it receives.
async fn connect(http: u16, received: Arc<AtomicU64>) -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut s = SettingEngine::default();
    s.set_include_loopback_candidate(true);
    s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    s.set_network_types(vec![NetworkType::Udp4]);
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    pc.add_transceiver_from_kind(
        RTPCodecType::Video,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            send_encodings: vec![],
        }),
    )
    .await
    .unwrap();
    pc.on_track(Box::new(move |track, _, _| {
        let received = received.clone();
        tokio::spawn(async move {
            while track.read_rtp().await.is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        });
        Box::pin(async {})
    }));
    let offer = pc.create_offer(None).await.unwrap();
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await.unwrap();
    let _ = gathered.recv().await;
    let sdp = pc.local_description().await.unwrap().sdp;
    let answer = tokio::task::spawn_blocking(move || post(http, "/whep/cam", &sdp))
        .await
        .unwrap();
    pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    pc
}

fn post(port: u16, path: &str, body: &str) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 201"), "{head}\n{body}");
    body.to_string()
}

/// Packets camgate sent to viewers, from its metrics.
fn sent_packets(http: u16) -> f64 {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("camgate_egress_packets_total") && l.contains("kind=\"viewer\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// camgate's CPU (fraction of a core) and RSS (KiB) over `d`.
fn sample(pid: u32, ticks: u64, d: Duration) -> (f64, u64) {
    let c0 = cpu_ticks(pid);
    let t0 = Instant::now();
    std::thread::sleep(d);
    let c1 = cpu_ticks(pid);
    (
        (c1 - c0) as f64 / ticks as f64 / t0.elapsed().as_secs_f64(),
        rss_kib(pid),
    )
}

fn playing(http: u16) -> bool {
    use std::io::Write;
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", http)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /api/v1/cameras/cam HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"state\":\"playing\"")
}

fn wait(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gateway not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
