//! The receiving side of benches/viewers.rs, run as a process of its own
//! (`viewers --peers N --whep URL` or `--peers N --janus URL --mountpoint
//! ID`), so that receiving 500 viewers' packets does not take camgate's (or
//! Janus's) CPU inside the measured process.
//!
//! Each viewer is a real WebRTC peer made with the `webrtc` crate (ICE,
//! DTLS-SRTP with the server, no interceptors: no NACK, no receiver
//! report), on a UDP socket of its own bound to 127.0.0.1. The crate would
//! decrypt every packet, which at 500 viewers costs more than this machine
//! has beside the server; so the socket is handed to the crate through a
//! UDP "mux" of ours ([`CountingMux`]) whose connection reads the socket
//! itself, counts every SRTP packet from its clear header (SSRC and
//! sequence number, RFC 3711 §3.1: losses are the gaps in the extended
//! sequence) and passes only one packet in `sample` to the crate, which
//! authenticates and decrypts it (those are counted as `decrypted`, the
//! proof that the keys are the real ones). STUN, DTLS and RTCP all go to
//! the crate.
//!
//! Protocol with the bench, one line each: the peers print `READY n` once
//! every viewer has had a packet; the bench writes `start` and then `stop`
//! on stdin (the measured window); the peers print one `VIEWER` line per
//! viewer (`key=value` fields: whole session, and `win_*` for the window)
//! and `DONE`, then exit.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::UDPMux;
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::util::Conn;

/// The address of the Janus viewers' sockets: Janus's own ICE address
/// (benches/viewers/janus.rs), as libnice fails to send its checks from
/// there to 127.0.0.1.
const JANUS_SIDE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Where the viewers come from.
#[derive(Debug, Clone)]
pub enum Server {
    /// camgate: WHEP, `POST` of our offer to this URL.
    Whep(String),
    /// Janus: its HTTP API at this base URL, the streaming plugin's
    /// mountpoint `id`; Janus offers, we answer.
    Janus { base: String, mountpoint: u64 },
}

/// The peer process's arguments.
#[derive(Debug, Clone)]
pub struct Args {
    pub viewers: usize,
    pub server: Server,
    /// One RTP packet in `sample` goes to the `webrtc` crate to be
    /// decrypted (1: all of them, as an ordinary `webrtc` crate peer).
    pub sample: u64,
}

impl Args {
    /// Reads `--peers N (--whep URL | --janus URL --mountpoint ID)
    /// [--sample K]`; `None` when `--peers` is absent.
    pub fn parse(args: &[String]) -> Option<Args> {
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let viewers = value("--peers")?.parse().expect("--peers N");
        let server = match (value("--whep"), value("--janus")) {
            (Some(url), None) => Server::Whep(url),
            (None, Some(base)) => Server::Janus {
                base,
                mountpoint: value("--mountpoint")
                    .and_then(|v| v.parse().ok())
                    .expect("--mountpoint ID"),
            },
            _ => panic!("--peers needs --whep URL or --janus URL"),
        };
        let sample = value("--sample")
            .map(|v| v.parse().expect("--sample K"))
            .unwrap_or(50);
        Some(Args {
            viewers,
            server,
            sample: sample.max(1),
        })
    }

    /// The arguments that make a peer process of these.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["--peers".to_string(), self.viewers.to_string()];
        match &self.server {
            Server::Whep(url) => a.extend(["--whep".into(), url.clone()]),
            Server::Janus { base, mountpoint } => a.extend([
                "--janus".into(),
                base.clone(),
                "--mountpoint".into(),
                mountpoint.to_string(),
            ]),
        }
        a.extend(["--sample".into(), self.sample.to_string()]);
        a
    }
}

/// What one viewer received, from the SRTP headers.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// The media SSRC: the first one seen.
    ssrc: Option<u32>,
    /// Extended sequence numbers (RFC 3550 A.1) of the first packet and
    /// the highest so far.
    first: u64,
    highest: u64,
    /// Packets of `ssrc`, each counted once as it came.
    received: u64,
    /// Packets at or below `highest` (reordered or repeated).
    late: u64,
    /// RTP packets of any other SSRC (retransmissions, if any).
    other: u64,
}

impl Tally {
    /// Counts one RTP packet (a header of at least 12 bytes).
    fn count(&mut self, pkt: &[u8]) {
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        match self.ssrc {
            None => {
                self.ssrc = Some(ssrc);
                // Far from zero, so that an early reordered packet does not
                // wrap below it.
                self.first = (1 << 32) + u64::from(seq);
                self.highest = self.first;
                self.received = 1;
            }
            Some(s) if s != ssrc => self.other += 1,
            Some(_) => {
                let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
                if delta > 0 {
                    self.highest = (self.highest as i64 + delta) as u64;
                } else {
                    self.late += 1;
                }
                self.received += 1;
            }
        }
    }

    /// Packets missing between the first and the highest.
    fn lost(&self) -> i64 {
        if self.ssrc.is_none() {
            return 0;
        }
        (self.highest - self.first + 1) as i64 - self.received as i64
    }
}

/// One viewer's counters, shared by its socket reader and the reporter.
struct Viewer {
    tally: Mutex<Tally>,
    /// RTP packets handed to the `webrtc` crate.
    sampled: AtomicU64,
    /// RTP packets the crate decrypted and delivered on the track.
    decrypted: AtomicU64,
    /// One packet in `sample` is handed to the crate.
    sample: u64,
}

impl Viewer {
    /// Counts a datagram; true when it goes on to the `webrtc` crate.
    fn on_datagram(&self, pkt: &[u8]) -> bool {
        // RTP and RTCP start with version 2 (first byte 128..=191); RTCP's
        // packet types are 192..=223 in the second byte (RFC 5761 §4).
        if pkt.len() < 12 || !(128..=191).contains(&pkt[0]) || (192..=223).contains(&pkt[1]) {
            return true;
        }
        let received = {
            let mut t = self.tally.lock().unwrap();
            t.count(pkt);
            t.received + t.other
        };
        if received % self.sample == 1 % self.sample {
            self.sampled.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// A UDP "mux" that is one socket for one viewer, whose connection counts
/// and samples as it reads (see the module's doc).
struct CountingMux {
    viewer: Arc<Viewer>,
    /// The address the socket is bound to.
    ip: Ipv4Addr,
    conn: tokio::sync::Mutex<Option<Arc<CountingConn>>>,
}

/// The socket of one viewer.
struct CountingConn {
    sock: tokio::net::UdpSocket,
    viewer: Arc<Viewer>,
    closed: CancellationToken,
}

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
type UtilResult<T> = Result<T, webrtc::util::Error>;

fn not_applicable<T>() -> UtilResult<T> {
    Err(std::io::Error::other("not applicable").into())
}

// `UDPMux` and `Conn` are `async_trait` traits; these are their expanded
// signatures (camgate does not depend on `async-trait` itself).
impl UDPMux for CountingMux {
    fn close<'l0, 'at>(&'l0 self) -> BoxFuture<'at, UtilResult<()>>
    where
        'l0: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            if let Some(c) = self.conn.lock().await.take() {
                c.closed.cancel();
            }
            Ok(())
        })
    }

    fn get_conn<'l0, 'at>(
        self: Arc<Self>,
        _ufrag: &'l0 str,
    ) -> BoxFuture<'at, UtilResult<Arc<dyn Conn + Send + Sync>>>
    where
        'l0: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            let mut conn = self.conn.lock().await;
            if let Some(c) = conn.as_ref() {
                return Ok(c.clone() as Arc<dyn Conn + Send + Sync>);
            }
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
            // Room for a fast-start burst (a GOP sent 1 ms apart).
            let _ = s.set_recv_buffer_size(1 << 20);
            s.bind(&SocketAddr::from((self.ip, 0)).into())?;
            s.set_nonblocking(true)?;
            let sock = tokio::net::UdpSocket::from_std(s.into())?;
            let c = Arc::new(CountingConn {
                sock,
                viewer: self.viewer.clone(),
                closed: CancellationToken::new(),
            });
            *conn = Some(c.clone());
            Ok(c as Arc<dyn Conn + Send + Sync>)
        })
    }

    fn remove_conn_by_ufrag<'l0, 'l1, 'at>(&'l0 self, _ufrag: &'l1 str) -> BoxFuture<'at, ()>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            if let Some(c) = self.conn.lock().await.take() {
                c.closed.cancel();
            }
        })
    }
}

impl Conn for CountingConn {
    fn connect<'l0, 'at>(&'l0 self, _addr: SocketAddr) -> BoxFuture<'at, UtilResult<()>>
    where
        'l0: 'at,
        Self: 'at,
    {
        Box::pin(async { not_applicable() })
    }

    fn recv<'l0, 'l1, 'at>(&'l0 self, _buf: &'l1 mut [u8]) -> BoxFuture<'at, UtilResult<usize>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async { not_applicable() })
    }

    fn recv_from<'l0, 'l1, 'at>(
        &'l0 self,
        buf: &'l1 mut [u8],
    ) -> BoxFuture<'at, UtilResult<(usize, SocketAddr)>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            loop {
                let (n, from) = tokio::select! {
                    r = self.sock.recv_from(buf) => r?,
                    _ = self.closed.cancelled() => {
                        return Err(std::io::Error::other("closed").into());
                    }
                };
                if self.viewer.on_datagram(&buf[..n]) {
                    return Ok((n, from));
                }
            }
        })
    }

    fn send<'l0, 'l1, 'at>(&'l0 self, _buf: &'l1 [u8]) -> BoxFuture<'at, UtilResult<usize>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async { not_applicable() })
    }

    fn send_to<'l0, 'l1, 'at>(
        &'l0 self,
        buf: &'l1 [u8],
        target: SocketAddr,
    ) -> BoxFuture<'at, UtilResult<usize>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async move { Ok(self.sock.send_to(buf, target).await?) })
    }

    fn local_addr(&self) -> UtilResult<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    fn close<'l0, 'at>(&'l0 self) -> BoxFuture<'at, UtilResult<()>>
    where
        'l0: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            self.closed.cancel();
            Ok(())
        })
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Runs the peer process; never returns.
pub fn run(args: Args) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let viewers: Vec<Arc<Viewer>> = (0..args.viewers)
        .map(|_| {
            Arc::new(Viewer {
                tally: Mutex::new(Tally::default()),
                sampled: AtomicU64::new(0),
                decrypted: AtomicU64::new(0),
                sample: args.sample,
            })
        })
        .collect();
    let started = Instant::now();
    let _pcs = rt.block_on(async {
        let mut pcs = Vec::new();
        // A few negotiations at a time (camgate's max_whep_negotiations).
        for chunk in viewers.chunks(16) {
            let mut handles = Vec::new();
            for v in chunk {
                let (v, server) = (v.clone(), args.server.clone());
                handles.push(tokio::spawn(async move {
                    match server {
                        Server::Whep(url) => connect_whep(&url, v).await,
                        Server::Janus { base, mountpoint } => {
                            connect_janus(&base, mountpoint, v).await
                        }
                    }
                }));
            }
            for h in handles {
                pcs.push(h.await.expect("viewer negotiation"));
            }
        }
        pcs
    });
    // Every viewer has a packet, or the bench learns which did not.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && viewers
            .iter()
            .any(|v| v.tally.lock().unwrap().received == 0)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "READY {} {:.1}",
        viewers
            .iter()
            .filter(|v| v.tally.lock().unwrap().received > 0)
            .count(),
        started.elapsed().as_secs_f64()
    )
    .unwrap();
    out.flush().unwrap();
    let mut lines = std::io::stdin().lock().lines();
    let mut at_start: Vec<Tally> = Vec::new();
    for line in lines.by_ref() {
        match line.unwrap_or_default().trim() {
            "start" => {
                at_start = viewers.iter().map(|v| *v.tally.lock().unwrap()).collect();
            }
            "stop" => break,
            _ => {}
        }
    }
    let at_stop: Vec<Tally> = viewers.iter().map(|v| *v.tally.lock().unwrap()).collect();
    for (i, v) in viewers.iter().enumerate() {
        let (a, b) = (at_start.get(i).copied().unwrap_or_default(), at_stop[i]);
        writeln!(
            out,
            "VIEWER {i} ssrc={} received={} lost={} late={} other={} win_received={} win_lost={} sampled={} decrypted={}",
            b.ssrc.unwrap_or(0),
            b.received,
            b.lost(),
            b.late,
            b.other,
            b.received - a.received,
            b.lost() - a.lost(),
            v.sampled.load(Ordering::Relaxed),
            v.decrypted.load(Ordering::Relaxed),
        )
        .unwrap();
    }
    writeln!(out, "DONE").unwrap();
    out.flush().unwrap();
    // No goodbyes: the servers see ICE go quiet; their processes end with
    // the point anyway.
    std::process::exit(0)
}

/// A peer connection for `viewer` with the given video codecs (the
/// crate's defaults when empty), no interceptors, on its own socket.
async fn peer(
    viewer: &Arc<Viewer>,
    ip: Ipv4Addr,
    codecs: Vec<RTCRtpCodecParameters>,
) -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    if codecs.is_empty() {
        media.register_default_codecs().unwrap();
    }
    for c in codecs {
        media.register_codec(c, RTPCodecType::Video).unwrap();
    }
    let mut s = SettingEngine::default();
    s.set_udp_network(UDPNetwork::Muxed(Arc::new(CountingMux {
        viewer: viewer.clone(),
        ip,
        conn: tokio::sync::Mutex::new(None),
    })));
    s.set_include_loopback_candidate(true);
    s.set_ip_filter(Box::new(move |a| a == ip));
    s.set_network_types(vec![NetworkType::Udp4]);
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(Registry::new())
        .with_setting_engine(s)
        .build();
    let pc = Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    let v = viewer.clone();
    pc.on_track(Box::new(move |track, _, _| {
        let v = v.clone();
        tokio::spawn(async move {
            while track.read_rtp().await.is_ok() {
                v.decrypted.fetch_add(1, Ordering::Relaxed);
            }
        });
        Box::pin(async {})
    }));
    pc
}

/// One camgate viewer: our offer, camgate's answer (WHEP).
async fn connect_whep(url: &str, viewer: Arc<Viewer>) -> Arc<RTCPeerConnection> {
    let pc = peer(&viewer, Ipv4Addr::LOCALHOST, Vec::new()).await;
    pc.add_transceiver_from_kind(
        RTPCodecType::Video,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            send_encodings: vec![],
        }),
    )
    .await
    .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await.unwrap();
    let _ = gathered.recv().await;
    let sdp = pc.local_description().await.unwrap().sdp;
    let url = url.to_string();
    let (status, answer) =
        tokio::task::spawn_blocking(move || http("POST", &url, Some(("application/sdp", &sdp))))
            .await
            .unwrap();
    assert_eq!(status, 201, "WHEP answered {status}: {answer}");
    pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    pc
}

/// One Janus viewer: a session and a streaming-plugin handle, `watch`,
/// Janus's offer from the event long poll, our answer with `start`.
async fn connect_janus(base: &str, mountpoint: u64, viewer: Arc<Viewer>) -> Arc<RTCPeerConnection> {
    let b = base.to_string();
    let (session, handle, offer) = tokio::task::spawn_blocking(move || janus_watch(&b, mountpoint))
        .await
        .unwrap();
    let offer_copy = offer.clone();
    let pc = peer(&viewer, JANUS_SIDE_IP, h264_of(&offer)).await;
    pc.set_remote_description(RTCSessionDescription::offer(offer).unwrap())
        .await
        .unwrap();
    let answer = pc.create_answer(None).await.unwrap();
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer).await.unwrap();
    let _ = gathered.recv().await;
    let sdp = pc.local_description().await.unwrap().sdp;
    if std::env::var_os("CAMGATE_VIEWERS_DEBUG").is_some() {
        eprintln!("Janus offer:\n{offer_copy}\nour answer:\n{sdp}");
    }
    let b = base.to_string();
    tokio::task::spawn_blocking(move || {
        let url = format!("{b}/{session}/{handle}");
        janus_post(
            &url,
            serde_json::json!({"janus": "message", "transaction": "start",
                "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": sdp}}),
        );
        janus_post(
            &url,
            serde_json::json!({"janus": "trickle", "transaction": "done",
                "candidate": {"completed": true}}),
        );
    })
    .await
    .unwrap();
    pc
}

/// The H.264 formats of an SDP offer, as codecs to register (Janus offers
/// the camera's own profile, which the crate's defaults may not have).
fn h264_of(sdp: &str) -> Vec<RTCRtpCodecParameters> {
    sdp.lines()
        .filter_map(|l| {
            let (pt, enc) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            if !enc.to_ascii_uppercase().starts_with("H264/") {
                return None;
            }
            let pt: u8 = pt.trim().parse().ok()?;
            let fmtp = sdp
                .lines()
                .find_map(|l| l.strip_prefix(&format!("a=fmtp:{pt} ")))
                .unwrap_or("")
                .trim()
                .to_string();
            Some(RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: "video/H264".into(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: fmtp,
                    rtcp_feedback: vec![],
                },
                payload_type: pt,
                ..Default::default()
            })
        })
        .collect()
}

/// Creates a session and a streaming handle and asks to watch
/// `mountpoint`; returns both ids and Janus's SDP offer.
fn janus_watch(base: &str, mountpoint: u64) -> (u64, u64, String) {
    let id = |v: serde_json::Value| v["data"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let session = id(janus_post(
        base,
        serde_json::json!({"janus": "create", "transaction": "create"}),
    ));
    let handle = id(janus_post(
        &format!("{base}/{session}"),
        serde_json::json!({"janus": "attach", "transaction": "attach",
            "plugin": "janus.plugin.streaming"}),
    ));
    janus_post(
        &format!("{base}/{session}/{handle}"),
        serde_json::json!({"janus": "message", "transaction": "watch",
            "body": {"request": "watch", "id": mountpoint}}),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (status, body) = http("GET", &format!("{base}/{session}?maxev=1"), None);
        assert_eq!(status, 200, "Janus long poll: {status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("Janus event JSON");
        for ev in v.as_array().cloned().unwrap_or_else(|| vec![v]) {
            if let Some(err) = ev["plugindata"]["data"]["error"].as_str() {
                panic!("Janus refused to watch mountpoint {mountpoint}: {err}");
            }
            if let Some(sdp) = ev["jsep"]["sdp"].as_str() {
                return (session, handle, sdp.to_string());
            }
        }
    }
    panic!("Janus sent no offer for mountpoint {mountpoint} within 60 s");
}

/// A Janus API request; panics unless Janus answers `success` or `ack`.
fn janus_post(url: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, text) = http("POST", url, Some(("application/json", &body.to_string())));
    assert_eq!(status, 200, "Janus {url}: {status} {text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("Janus answer JSON");
    match v["janus"].as_str() {
        Some("success" | "ack") => v,
        _ => panic!("Janus refused {body}: {v}"),
    }
}

/// A plain HTTP/1.1 request to `http://127.0.0.1:PORT/path`; returns the
/// status and the body.
pub fn http(method: &str, url: &str, body: Option<(&str, &str)>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some((ctype, b)) = body {
        req += &format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n", b.len());
    }
    req += "\r\n";
    if let Some((_, b)) = body {
        req += b;
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// The body of a chunked transfer encoding.
fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out += &rest[..n];
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The loss count's own check (this bench has no test harness): gaps
/// across the sequence wrap, reordering and a second SSRC.
pub fn check_tally() {
    let rtp = |seq: u16, ssrc: u32| {
        let mut p = [0u8; 12];
        p[0] = 0x80;
        p[1] = 96;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    };
    let mut t = Tally::default();
    for seq in [65534u16, 65535, 0, 2, 1, 3] {
        t.count(&rtp(seq, 7));
    }
    t.count(&rtp(9, 8));
    assert_eq!((t.received, t.lost(), t.late, t.other), (6, 0, 1, 1));
    t.count(&rtp(10, 7));
    assert_eq!(t.lost(), 6);
}
