//! UDP sessions of the sim (RFC 2326 section 12.39 `client_port` /
//! `server_port`): one task per session owns its socket pairs and paces the
//! clip; RTSP connections steer it through a small command channel. The
//! session outlives its RTSP connection and expires without RTSP or RTCP
//! from the client, like a camera's.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, trace};

use super::control::bump;
use super::faults::Faults;
use super::inject::{Datagram, FaultySession, Tick};
use super::stream::{PacketRef, RtpInfo, StreamState, Streamer, FRAME_PERIOD};
use super::{clip, Shared};
use crate::camera::codec::VideoCodec;

/// Attempts at finding an even/odd port pair before taking any two ports.
const PORT_PAIR_ATTEMPTS: usize = 32;

/// The connection side of a UDP session.
#[derive(Debug)]
pub(crate) struct UdpHandle {
    /// Last sign of life (RTSP request or RTCP), in ms since
    /// [`Shared::epoch`]; written by connections and the session task.
    last_alive: AtomicU64,
    /// Commands to the session task; bounded, the task answers at once.
    ctl: mpsc::Sender<Command>,
}

impl UdpHandle {
    /// Records a sign of life at `now_ms`.
    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_alive.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Adds a stream before PLAY; false if the session is already playing,
    /// already has that track, or has ended.
    pub(crate) async fn add_stream(&self, stream: UdpStream) -> bool {
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send(Command::AddStream(Box::new(stream), tx))
            .await
            .is_ok()
            && rx.await.unwrap_or(false)
    }

    /// Starts or resumes sending; the `RTP-Info` of the first packets, or
    /// `None` if the session has ended.
    pub(crate) async fn play(&self) -> Option<Vec<RtpInfo>> {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Command::Play(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops sending until the next PLAY.
    pub(crate) async fn pause(&self) {
        let _ = self.ctl.send(Command::Pause).await;
    }

    /// Ends the session.
    pub(crate) async fn teardown(&self) {
        let _ = self.ctl.send(Command::Teardown).await;
    }
}

/// What a connection asks of a UDP session task.
#[derive(Debug)]
enum Command {
    /// A further SETUP; answered true if added.
    AddStream(Box<UdpStream>, oneshot::Sender<bool>),
    /// PLAY; answered with the `RTP-Info` values.
    Play(oneshot::Sender<Vec<RtpInfo>>),
    /// PAUSE.
    Pause,
    /// TEARDOWN.
    Teardown,
}

/// One set-up stream of a UDP session.
#[derive(Debug)]
pub(crate) struct UdpStream {
    /// RTP state (no interleaved channels).
    pub(crate) state: StreamState,
    /// Server RTP socket (even port when possible).
    pub(crate) rtp: UdpSocket,
    /// Server RTCP socket (RTP port + 1 when possible); RRs arrive here.
    pub(crate) rtcp: UdpSocket,
    /// Client RTP address.
    pub(crate) dest_rtp: SocketAddr,
    /// Client RTCP address.
    pub(crate) dest_rtcp: SocketAddr,
}

/// Binds an RTP/RTCP socket pair on `ip`, consecutive ports with an even
/// RTP port when possible (RFC 3550 section 11; clients derive the RTCP
/// port from it).
pub(crate) async fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..PORT_PAIR_ATTEMPTS {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            return Ok((rtp, rtcp));
        }
    }
    let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    Ok((rtp, rtcp))
}

/// Creates and registers a UDP session of `camera` (sending `codec`, with
/// `faults`) with its first stream and spawns its task.
pub(crate) fn start(
    shared: &Arc<Shared>,
    id: String,
    first: UdpStream,
    camera: &str,
    faults: Faults,
    codec: VideoCodec,
) -> Arc<UdpHandle> {
    bump(&shared.stats.counters().udp_sessions);
    let (tx, rx) = mpsc::channel(8);
    let handle = Arc::new(UdpHandle {
        last_alive: AtomicU64::new(shared.now_ms()),
        ctl: tx,
    });
    shared
        .udp_sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), handle.clone());
    let task = Session {
        shared: shared.clone(),
        id,
        handle: handle.clone(),
        media: FaultySession::new(
            Streamer::new(clip::clip(codec)),
            camera,
            faults,
            shared.stats.clone(),
            &shared.registry,
        ),
        sockets: Vec::new(),
    };
    shared.tracker.spawn(task.run(rx, first));
    handle
}

/// The session task's state.
struct Session {
    /// Server state (registry, shutdown, options).
    shared: Arc<Shared>,
    /// Session id, to leave the registry at the end.
    id: String,
    /// Shared liveness stamp.
    handle: Arc<UdpHandle>,
    /// RTP state of the streams and the faults they suffer.
    media: FaultySession,
    /// Sockets and destinations, index-aligned with `streamer.streams`.
    sockets: Vec<Sockets>,
}

/// Sockets and destinations of one stream.
struct Sockets {
    /// Server RTP socket.
    rtp: UdpSocket,
    /// Server RTCP socket.
    rtcp: UdpSocket,
    /// Client RTP address.
    dest_rtp: SocketAddr,
    /// Client RTCP address.
    dest_rtcp: SocketAddr,
}

impl Session {
    fn add(&mut self, s: UdpStream) -> bool {
        let streamer = &mut self.media.streamer;
        if streamer.has(s.state.track) || streamer.streams.len() >= 2 {
            return false;
        }
        streamer.streams.push(s.state);
        self.sockets.push(Sockets {
            rtp: s.rtp,
            rtcp: s.rtcp,
            dest_rtp: s.dest_rtp,
            dest_rtcp: s.dest_rtcp,
        });
        true
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>, first: UdpStream) {
        self.add(first);
        let timeout = self.shared.options.session_timeout;
        let mut ticker: Option<Interval> = None;
        // One buffer for every frame; packets are datagrams within it.
        let mut out = Vec::with_capacity(64 * 1024);
        let mut packets = Vec::with_capacity(64);
        // Datagrams in sending order, when UDP faults are on.
        let mut sends = Vec::with_capacity(64);
        // End of the current stall; the ticker is not polled until then.
        let mut stall_until: Option<Instant> = None;
        let reason = loop {
            let last = Duration::from_millis(self.handle.last_alive.load(Ordering::Relaxed));
            let expires = Instant::from_std(self.shared.epoch + last + timeout);
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => break "shutdown",
                _ = tokio::time::sleep_until(expires) => {
                    let last = self.handle.last_alive.load(Ordering::Relaxed);
                    if Duration::from_millis(self.shared.now_ms().saturating_sub(last)) >= timeout {
                        break "expired";
                    }
                }
                cmd = rx.recv() => match cmd {
                    None | Some(Command::Teardown) => break "teardown",
                    Some(Command::AddStream(s, reply)) => {
                        let ok = ticker.is_none() && self.add(*s);
                        let _ = reply.send(ok);
                    }
                    Some(Command::Play(reply)) => {
                        let _ = reply.send(self.media.streamer.rtp_info());
                        if ticker.is_none() {
                            let mut t = tokio::time::interval(FRAME_PERIOD);
                            // Catch up after a stall: keeps media time = wall time.
                            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                            ticker = Some(t);
                        }
                    }
                    Some(Command::Pause) => ticker = None,
                },
                _ = tick(&mut ticker, stall_until.is_some()) => {
                    match self.media.tick() {
                        Tick::Send => {}
                        Tick::Stall(d) => {
                            stall_until = Some(Instant::now() + d);
                            continue;
                        }
                        Tick::Reboot => break "simulated reboot",
                        Tick::NoReceiverReport => break "no RTCP receiver report",
                    }
                    self.send_frame(&mut out, &mut packets, &mut sends).await;
                }
                () = stall_end(stall_until) => {
                    stall_until = None;
                    if ticker.is_some() {
                        // The frame held at the stall; the missed ones follow.
                        self.send_frame(&mut out, &mut packets, &mut sends).await;
                    }
                }
                () = readable(&self.sockets, 0) => self.drain(0),
                () = readable(&self.sockets, 1) => self.drain(1),
            }
        };
        debug!(session = %self.id, reason, "sim: UDP session ended");
        self.shared
            .udp_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }

    /// Writes the next frame and sends its datagrams, through the UDP
    /// faults when there are any.
    async fn send_frame(
        &mut self,
        out: &mut Vec<u8>,
        packets: &mut Vec<PacketRef>,
        sends: &mut Vec<Datagram>,
    ) {
        out.clear();
        packets.clear();
        sends.clear();
        self.media.write_frame(SystemTime::now(), out, packets);
        if self.media.udp_faulty() {
            self.media.udp_datagrams(out, packets, sends);
        } else {
            sends.extend((0..packets.len()).map(Datagram::Packet));
        }
        for d in sends.iter() {
            let (stream, rtcp, data) = match d {
                Datagram::Packet(n) => {
                    let p = &packets[*n];
                    (p.stream, p.rtcp, &out[p.range.clone()])
                }
                Datagram::Held { stream, data } => (*stream, false, &data[..]),
            };
            let Some(s) = self.sockets.get(stream) else {
                continue;
            };
            let (sock, dest) = if rtcp {
                (&s.rtcp, s.dest_rtcp)
            } else {
                (&s.rtp, s.dest_rtp)
            };
            // A lost datagram is what UDP means; the client's RTCP (or its
            // absence) decides the session's fate.
            if let Err(e) = sock.send_to(data, dest).await {
                trace!(session = %self.id, "sim: UDP send to {dest}: {e}");
            }
        }
    }

    /// Reads whatever the client sent to stream `i`'s sockets (RTCP
    /// receiver reports and feedback, NAT hole punches): RTCP counts as
    /// liveness, and a PLI or FIR in it asks for a keyframe.
    fn drain(&mut self, i: usize) {
        let mut buf = [0u8; 1500];
        let Some(s) = self.sockets.get(i) else { return };
        let mut alive = false;
        while let Ok((n, _)) = s.rtcp.try_recv_from(&mut buf) {
            alive = true;
            self.media.handle_rtcp(&buf[..n]);
        }
        while s.rtp.try_recv_from(&mut buf).is_ok() {}
        if alive {
            self.handle.touch(self.shared.now_ms());
        }
    }
}

/// Resolves at the end of a stall; never without one.
async fn stall_end(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Waits for the next frame time while playing and not stalled; never
/// resolves otherwise.
async fn tick(ticker: &mut Option<Interval>, stalled: bool) {
    match ticker {
        Some(t) if !stalled => {
            t.tick().await;
        }
        _ => std::future::pending().await,
    }
}

/// Resolves when either socket of stream `i` has a datagram to read.
async fn readable(sockets: &[Sockets], i: usize) {
    match sockets.get(i) {
        Some(s) => {
            tokio::select! {
                r = s.rtcp.readable() => { let _ = r; }
                r = s.rtp.readable() => { let _ = r; }
            }
        }
        None => std::future::pending().await,
    }
}
