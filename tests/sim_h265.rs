//! The simulator's H.265 camera (`?codec=h265`, `camgate sim --codec
//! h265`, `sim://NAME?codec=h265`) seen from outside: its SDP (RFC 7798
//! section 7), RFC 7798 payloads with an IRAP at once after a PLI, ffmpeg
//! pulling it directly with no decoder error when clean, and with the
//! fault set (2 % truncation, garbage, stalls, UDP loss and reordering,
//! SSRC changes) the H.265 decoder reporting errors. Everything on
//! 127.0.0.1.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use camgate::sim::{FaultStats, SimOptions, SimServer};
use common::*;
use rtsp::RawRtsp;
use tokio_util::sync::CancellationToken;

/// The fault set of the issue, for TCP and UDP pulls alike (each transport
/// suffers the faults that apply to it): 2 % truncation and 1 % garbage
/// over TCP, 5 % loss and 5 % reordering over UDP, a 700 ms stall every
/// 5 s and an encoder restart (SSRC change) every 7 s over both.
const FAULTS: &str = "seed=7&truncate=0.02&garbage=0.01&stall_every_s=5&stall_ms=700\
                      &udp_loss=0.05&udp_reorder=0.05&ssrc_change_every_s=7";

/// A simulator running in this process (its own runtime thread), so its
/// fault counters can be read.
struct InProcessSim {
    addr: SocketAddr,
    stats: FaultStats,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessSim {
    fn start(options: SimOptions) -> InProcessSim {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = CancellationToken::new();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = SimServer::bind(([127, 0, 0, 1], 0).into(), options)
                    .await
                    .unwrap();
                tx.send((server.local_addr(), server.fault_stats()))
                    .unwrap();
                server.run(stop2).await;
            });
        });
        let (addr, stats) = rx.recv().unwrap();
        InProcessSim {
            addr,
            stats,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.addr)
    }
}

impl Drop for InProcessSim {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The SDP's `a=rtpmap` and `a=fmtp` lines of the video (payload type 96).
fn video_lines(sdp: &str) -> (String, String) {
    let line = |prefix: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {sdp}"))
            .trim()
            .to_owned()
    };
    (line("a=rtpmap:96 "), line("a=fmtp:96 "))
}

/// Checks an H.265 `a=fmtp`: Main profile, Main tier, parameter sets of
/// the right NAL unit types, no DONL.
fn assert_h265_fmtp(fmtp: &str) {
    use base64::Engine as _;
    let param = |name: &str| {
        fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    assert_eq!(param("profile-id").as_deref(), Some("1"), "{fmtp}");
    assert_eq!(param("tier-flag").as_deref(), Some("0"), "{fmtp}");
    assert!(param("sprop-max-don-diff").is_none(), "{fmtp}");
    for (name, nal_type) in [("sprop-vps", 32), ("sprop-sps", 33), ("sprop-pps", 34)] {
        let value = param(name).unwrap_or_else(|| panic!("no {name} in {fmtp}"));
        let nal = base64::engine::general_purpose::STANDARD
            .decode(&value)
            .unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        assert_eq!((nal[0] >> 1) & 0x3f, nal_type, "{name}");
    }
}

/// DESCRIBE of `url` on a new connection to `port`: (status, body).
fn describe(port: u16, url: &str) -> (u16, String) {
    let r = RawRtsp::connect(port).request("DESCRIBE", url, &[("Accept", "application/sdp")]);
    (r.status, r.body)
}

/// `camgate sim --codec h265`: every camera is H.265 unless its URL says
/// `codec=h264`; ffmpeg decodes it over TCP and over UDP (with its PCMU
/// audio) with no error and at least 95 % of the pictures.
#[test]
fn camgate_sim_codec_h265_decodes_cleanly_in_ffmpeg() {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let port = free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let sim = spawn_camgate(
        dir.path(),
        "sim",
        &["sim", "--listen", &listen, "--codec", "h265"],
    );
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = |path: &str| format!("rtsp://{listen}/{path}");

    let (status, sdp) = describe(port, &url("cam"));
    assert_eq!(status, 200, "{}", sim.log_text());
    let (rtpmap, fmtp) = video_lines(&sdp);
    assert_eq!(rtpmap, "H265/90000");
    assert_h265_fmtp(&fmtp);
    // A camera may still ask for H.264; a codec the sim lacks is a 400.
    let (_, sdp) = describe(port, &url("other?codec=h264"));
    let (rtpmap, fmtp) = video_lines(&sdp);
    assert_eq!(rtpmap, "H264/90000");
    assert!(fmtp.contains("sprop-parameter-sets="), "{fmtp}");
    assert_eq!(describe(port, &url("bad?codec=vp8")).0, 400);

    let seconds = 8;
    let tcp = spawn_ffmpeg_decode(&url("cam?audio=0"), seconds, &["-rtsp_transport", "tcp"]);
    let udp = spawn_ffmpeg_decode(&url("cam2"), seconds, &["-rtsp_transport", "udp"]);
    let limit = Duration::from_secs(u64::from(seconds) + 30);
    let (tcp, udp) = (wait_decode(tcp, limit), wait_decode(udp, limit));
    let expected = seconds as usize * 25;
    for (transport, d) in [("tcp", &tcp), ("udp", &udp)] {
        eprintln!(
            "{transport}: {} pictures, {} audio frames, errors {:?}",
            d.video_frames, d.audio_frames, d.errors
        );
        assert!(d.success, "{transport}: ffmpeg failed: {:?}", d.errors);
        assert!(
            d.errors.is_empty(),
            "{transport}: decoder errors: {:#?}",
            d.errors
        );
        assert!(
            d.video_frames * 100 >= expected * 95,
            "{transport}: {} pictures of {expected}",
            d.video_frames
        );
    }
    assert_eq!(tcp.audio_frames, 0);
    assert!(
        udp.audio_frames >= seconds as usize * 50 * 9 / 10,
        "{} PCMU frames",
        udp.audio_frames
    );
}

/// ffmpeg pulling the faulty H.265 camera directly, over TCP and over UDP
/// at the same time: each pull suffered its faults (the sim's counters)
/// and the H.265 decoder reported errors.
#[test]
fn faulty_h265_sim_gives_ffmpeg_decoder_errors() {
    require_tool("ffmpeg");
    // The server's codec is H.264: the URL's `codec=h265` picks H.265.
    let sim = InProcessSim::start(SimOptions::default());
    let (status, sdp) = describe(
        sim.addr.port(),
        &sim.url(&format!("cam?codec=h265&{FAULTS}")),
    );
    assert_eq!(status, 200);
    assert_eq!(video_lines(&sdp).0, "H265/90000");

    let seconds = 20;
    let tcp = spawn_ffmpeg_decode(
        &sim.url(&format!("tcp?audio=0&codec=h265&{FAULTS}")),
        seconds,
        &["-rtsp_transport", "tcp"],
    );
    let udp = spawn_ffmpeg_decode(
        &sim.url(&format!("udp?audio=0&codec=h265&{FAULTS}")),
        seconds,
        &["-rtsp_transport", "udp"],
    );
    let limit = Duration::from_secs(u64::from(seconds) + 40);
    let (tcp, udp) = (wait_decode(tcp, limit), wait_decode(udp, limit));
    let counts = sim.stats.snapshot();
    eprintln!("injected {counts:?}");
    assert!(
        counts.truncated > 0 && counts.garbage_bursts > 0,
        "{counts:?}"
    );
    assert!(
        counts.udp_lost > 0 && counts.udp_reordered > 0,
        "{counts:?}"
    );
    // Each session stalls and restarts its encoder on its own.
    assert!(counts.stalls >= 4 && counts.ssrc_changes >= 2, "{counts:?}");
    assert_eq!((counts.tcp_sessions, counts.udp_sessions), (1, 1));
    for (transport, d) in [("tcp", &tcp), ("udp", &udp)] {
        let hevc = d.errors.iter().filter(|l| l.contains("[hevc @")).count();
        eprintln!(
            "{transport}: {} pictures, {} error lines ({hevc} from the H.265 decoder), ran to the end: {}",
            d.video_frames,
            d.errors.len(),
            d.success
        );
        assert!(d.video_frames > 0, "{transport}: nothing decoded: {d:?}");
        assert!(
            hevc > 0,
            "{transport}: the H.265 decoder saw nothing wrong: {:#?}",
            d.errors
        );
    }
}

/// NAL unit types an RFC 7798 payload carries: the NAL unit itself, the
/// units of an aggregation packet, or the one a first fragment begins.
fn h265_nal_types(payload: &[u8]) -> Vec<u8> {
    let Some(&h) = payload.first() else {
        return Vec::new();
    };
    match (h >> 1) & 0x3f {
        48 => {
            let mut rest = payload.get(2..).unwrap_or(&[]);
            let mut types = Vec::new();
            while rest.len() >= 3 {
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                types.push((rest[2] >> 1) & 0x3f);
                rest = rest.get(2 + n..).unwrap_or(&[]);
            }
            types
        }
        49 => payload
            .get(2)
            .filter(|fu| *fu & 0x80 != 0)
            .map(|fu| vec![fu & 0x3f])
            .unwrap_or_default(),
        t => vec![t],
    }
}

/// Over TCP, a PLI after picture 5 makes the next picture an IRAP (with
/// VPS, SPS and PPS before it) where the clip's next one is at 50; the
/// RTP timestamps go on by one frame per picture.
#[test]
fn h265_pli_gives_an_irap_at_once() {
    let sim = InProcessSim::start(SimOptions::default());
    let mut c = RawRtsp::connect(sim.addr.port());
    c.play_tcp(&sim.url("cam?codec=h265"), false);
    // Pictures as the NAL unit types of their packets, with timestamps.
    let mut pictures: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut current = Vec::new();
    let mut sent = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pictures.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "only {} pictures",
            pictures.len()
        );
        let f = c.read_frame().expect("media");
        if f.channel != 0 {
            continue;
        }
        current.extend(h265_nal_types(f.payload()));
        if f.marker() {
            let ts = u32::from_be_bytes([f.data[4], f.data[5], f.data[6], f.data[7]]);
            pictures.push((ts, std::mem::take(&mut current)));
        }
        if !sent && pictures.len() == 6 {
            sent = true;
            let ssrc = u32::from_be_bytes([f.data[8], f.data[9], f.data[10], f.data[11]]);
            let mut pli = vec![b'$', 1, 0, 12, 0x81, 206, 0, 2];
            pli.extend_from_slice(&1u32.to_be_bytes());
            pli.extend_from_slice(&ssrc.to_be_bytes());
            c.send_raw(&pli).expect("send PLI");
        }
    }
    let irap: Vec<usize> = (0..pictures.len())
        .filter(|&i| pictures[i].1.iter().any(|t| (16..=23).contains(t)))
        .collect();
    assert_eq!(irap[0], 0);
    assert!(
        irap.len() == 2 && (6..=8).contains(&irap[1]),
        "IRAPs at {irap:?}"
    );
    for &i in &irap {
        let types = &pictures[i].1;
        assert_eq!(types[..3], [32, 33, 34], "picture {i}: {types:?}");
    }
    for (i, p) in pictures.iter().enumerate() {
        // Four slice segments per picture, each starting one packet or
        // fragment run.
        let slices = p.1.iter().filter(|t| **t < 32).count();
        assert_eq!(slices, 4, "picture {i}: {:?}", p.1);
    }
    for w in pictures.windows(2) {
        assert_eq!(w[1].0.wrapping_sub(w[0].0), 3600);
    }
    drop(c);
    assert_eq!(sim.stats.snapshot().keyframe_requests_honoured, 1);
}

/// `sim://NAME?codec=h265` in cameras.toml: the gateway's simulator URL
/// carries the codec (with `[camera.faults]` after it) and the sim serves
/// H.265 for it instead of refusing `codec` as an unknown fault key.
#[test]
fn sim_url_of_a_config_camera_carries_the_codec() {
    let toml = "[[camera]]\nid = \"cam\"\nurl = \"sim://yard?codec=h265\"\n\
                [camera.faults]\nseed = 3\ntruncate = 0.02\n";
    let config = camgate::config::Config::parse(toml, "cameras.toml").expect("config parses");
    let sim = InProcessSim::start(SimOptions::default());
    let url = camgate::gateway::sim_url(&config.cameras[0], sim.addr).expect("sim URL");
    assert_eq!(url.path(), "/yard");
    assert_eq!(url.query(), Some("codec=h265&seed=3&truncate=0.02"));
    let (status, sdp) = describe(sim.addr.port(), url.as_str());
    assert_eq!(status, 200, "{sdp}");
    let (rtpmap, fmtp) = video_lines(&sdp);
    assert_eq!(rtpmap, "H265/90000");
    assert_h265_fmtp(&fmtp);
}
