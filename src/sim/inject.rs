//! Fault injection of one sim session: decides, from a seeded generator,
//! which packets are cut short, lost, reordered or duplicated, where garbage
//! goes, and when the camera stalls, restarts its encoder, steps its clock
//! or reboots; answers RTCP PLI/FIR (RFC 4585 section 6.3.1, RFC 5104
//! section 4.3.1); and, with `require_rr_s`, ends a session whose client
//! sends no receiver reports (RFC 3550 section 6.4.2). Sans-IO: no sockets, no clocks; decisions depend only on
//! the seed, the camera name and the packets, so runs repeat.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::clip::FPS;
use super::control::{bump, Counters, FaultStats, Registration, Registry};
use super::faults::Faults;
use super::stream::{PacketRef, Streamer};

/// RTP fixed header length (RFC 3550 section 5.1); truncation keeps it.
const RTP_HEADER: usize = 12;

/// Most packets a UDP session holds back for reordering at once.
const MAX_HELD: usize = 16;

/// Highest effective truncation probability of one frame after biasing.
const MAX_TRUNCATE: f64 = 0.9;

/// Bias of truncation toward packets of keyframe access units.
const KEYFRAME_BIAS: f64 = 3.0;

/// RTCP payload-specific feedback (RFC 4585 section 6.1).
const RTCP_PSFB: u8 = 206;

/// RTCP receiver report (RFC 3550 section 6.4.2).
const RTCP_RR: u8 = 201;

/// 64-bit FNV-1a of a camera name: stable across builds and platforms,
/// unlike `DefaultHasher`, so a seed means the same faults everywhere.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Frames in a period of `seconds` (0: never).
fn period_frames(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        ((seconds * f64::from(FPS)).round() as u64).max(1)
    } else {
        0
    }
}

/// A probability made safe for `random_bool`-style draws.
fn prob(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// What a session does at a frame tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Write the next frame now ([`FaultySession::write_frame`]).
    Send,
    /// Send nothing for this long, then write the frame held back and the
    /// ones missed meanwhile as fast as possible.
    Stall(Duration),
    /// Drop the connection (TCP) or end the session (UDP), as a camera
    /// that reboots.
    Reboot,
    /// The client sent no RTCP receiver report for `require_rr_s`: end the
    /// session as [`Tick::Reboot`] does, as firmware that wants RRs does.
    NoReceiverReport,
}

/// One datagram to send, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Datagram {
    /// Packet `n` of the frame just written.
    Packet(usize),
    /// An RTP packet of stream `stream` held back from an earlier point.
    Held {
        /// Index of its stream.
        stream: usize,
        /// The packet.
        data: Vec<u8>,
    },
}

/// A packet held back for reordering.
#[derive(Debug)]
struct Held {
    /// Packets still to go out before it.
    remaining: u8,
    /// Index of its stream.
    stream: usize,
    /// The packet.
    data: Vec<u8>,
}

/// The media and fault state of one sim session: a [`Streamer`] and the
/// faults it suffers.
///
/// Call order: at each frame tick, [`FaultySession::tick`]; on `Send` (or at
/// the end of a stall) [`FaultySession::write_frame`], then
/// [`FaultySession::tcp_wire`] or [`FaultySession::udp_datagrams`] to learn
/// what to put on the wire. Feed RTCP from the client to
/// [`FaultySession::handle_rtcp`].
#[derive(Debug)]
pub(crate) struct FaultySession {
    /// RTP state of the session's streams.
    pub(crate) streamer: Streamer,
    /// The faults, as configured for this camera.
    faults: Faults,
    /// Fault generator, seeded with `seed ^ hash(camera)`.
    rng: StdRng,
    /// Server-wide counters.
    stats: FaultStats,
    /// Frames between stalls, SSRC changes, timestamp jumps, reboots (0:
    /// never).
    periods: Periods,
    /// Ticks seen, for the periods.
    ticks: u64,
    /// A keyframe was requested over RTCP; honoured at the next frame.
    keyframe_wanted: bool,
    /// Our entry for the keyframe trigger, while we honour PLI.
    registration: Option<Registration>,
    /// UDP packets held back for reordering, oldest first.
    held: VecDeque<Held>,
    /// The tick at which the last RTCP receiver report came (0 before any:
    /// the wait starts with the first frame).
    last_rr_tick: u64,
}

/// Periods of the periodic faults, in frames (0: never).
#[derive(Debug, Clone, Copy)]
struct Periods {
    /// Between stalls (0 also when `stall_ms` is 0).
    stall: u64,
    /// Between encoder restarts (SSRC changes).
    ssrc: u64,
    /// Between 10 s timestamp jumps.
    timestamp: u64,
    /// Between reboots.
    reboot: u64,
    /// Longest time without a receiver report before the session ends.
    require_rr: u64,
}

impl FaultySession {
    /// A session of camera `camera` injecting `faults`, counting into
    /// `stats` and reachable by the keyframe trigger through `registry`.
    pub(crate) fn new(
        mut streamer: Streamer,
        camera: &str,
        faults: Faults,
        stats: FaultStats,
        registry: &std::sync::Arc<Registry>,
    ) -> Self {
        streamer.set_in_band_params(!faults.sprop_only);
        let rng = StdRng::seed_from_u64(faults.seed ^ name_hash(camera));
        let periods = Periods {
            stall: if faults.stall_ms > 0 {
                period_frames(faults.stall_every_s)
            } else {
                0
            },
            ssrc: period_frames(faults.ssrc_change_every_s),
            timestamp: period_frames(faults.timestamp_jump_every_s),
            reboot: period_frames(faults.reboot_every_s),
            require_rr: period_frames(faults.require_rr_s),
        };
        // The ONVIF trigger is honoured even when RTCP is not: many real
        // cameras ignore PLI/FIR yet obey SetSynchronizationPoint.
        let registration = Some(registry.register(camera));
        FaultySession {
            streamer,
            faults,
            rng,
            stats,
            periods,
            ticks: 0,
            keyframe_wanted: false,
            registration,
            held: VecDeque::new(),
            last_rr_tick: 0,
        }
    }

    fn counters(&self) -> &Counters {
        self.stats.counters()
    }

    /// Call at each frame tick: says whether to send, stall or reboot, and
    /// applies the clock and encoder faults due at this frame.
    pub(crate) fn tick(&mut self) -> Tick {
        self.ticks += 1;
        let t = self.ticks;
        let due = |period: u64| period > 0 && t % period == 0;
        if due(self.periods.reboot) {
            bump(&self.counters().reboots);
            return Tick::Reboot;
        }
        let rr = self.periods.require_rr;
        if rr > 0 && t - self.last_rr_tick > rr {
            bump(&self.counters().rr_timeouts);
            return Tick::NoReceiverReport;
        }
        if due(self.periods.ssrc) {
            let (ssrc, seq) = (self.rng.random(), self.rng.random());
            self.streamer.restart_video(ssrc, seq);
            bump(&self.counters().ssrc_changes);
        }
        if due(self.periods.timestamp) {
            self.streamer.jump_timestamps();
            bump(&self.counters().timestamp_jumps);
        }
        if due(self.periods.stall) {
            bump(&self.counters().stalls);
            // An hour at most, so deadlines stay far from overflow.
            return Tick::Stall(Duration::from_millis(self.faults.stall_ms.min(3_600_000)));
        }
        Tick::Send
    }

    /// Writes the next frame's packets (see [`Streamer::write_next`]),
    /// first jumping to a keyframe (H.264 IDR, H.265 IRAP) if one was asked
    /// for. Returns true when the video frame is a keyframe.
    pub(crate) fn write_frame(
        &mut self,
        wall: SystemTime,
        out: &mut Vec<u8>,
        packets: &mut Vec<PacketRef>,
    ) -> bool {
        let triggered = self
            .registration
            .as_ref()
            .is_some_and(|r| r.signal.take_keyframe());
        if triggered {
            bump(&self.counters().keyframe_requests_honoured);
        }
        if std::mem::take(&mut self.keyframe_wanted) || triggered {
            self.streamer.jump_to_keyframe();
        }
        self.streamer.write_next(wall, out, packets)
    }

    /// Takes RTCP from the client (a compound packet): a receiver report
    /// restarts the `require_rr_s` wait; a PLI or FIR makes the next frame
    /// a keyframe when the faults honour PLI.
    pub(crate) fn handle_rtcp(&mut self, rtcp: &[u8]) {
        if has_receiver_report(rtcp) {
            self.last_rr_tick = self.ticks;
        }
        if self.faults.honour_pli && is_keyframe_request(rtcp) {
            self.keyframe_wanted = true;
            bump(&self.counters().keyframe_requests_honoured);
        }
    }

    /// True when a TCP session must rewrite frames ([`Self::tcp_wire`]);
    /// false lets it write the streamer's buffer as is.
    pub(crate) fn tcp_faulty(&self) -> bool {
        self.faults.truncate > 0.0 || self.faults.truncate_resend > 0.0 || self.faults.garbage > 0.0
    }

    /// True when a UDP session must ask [`Self::udp_datagrams`] what to send.
    pub(crate) fn udp_faulty(&self) -> bool {
        self.faults.udp_loss > 0.0
            || self.faults.udp_reorder > 0.0
            || self.faults.udp_duplicate > 0.0
            || !self.held.is_empty()
    }

    /// Rewrites one frame of interleaved packets (`out`, as written by
    /// [`Self::write_frame`] with its `packets`) into `wire` with the TCP
    /// faults: garbage between frames, RTP packets cut short (and maybe
    /// resent whole). `keyframe` is what `write_frame` returned.
    pub(crate) fn tcp_wire(
        &mut self,
        out: &[u8],
        packets: &[PacketRef],
        keyframe: bool,
        wire: &mut Vec<u8>,
    ) {
        let video = self.streamer.video();
        // At most one packet of the frame is cut (or cut and resent): the
        // probability is per frame, biased toward keyframes, and the packet
        // is picked with a weight of its size, as partial writes hit large
        // writes.
        let cut_at = self.pick_victim(self.faults.truncate, packets, keyframe, video);
        let resend_at = match cut_at {
            Some(_) => None,
            None => self.pick_victim(self.faults.truncate_resend, packets, keyframe, video),
        };
        for (i, p) in packets.iter().enumerate() {
            // Every recorded packet of an interleaved stream has its 4-byte
            // `$` header just before its range.
            let Some(start) = p.range.start.checked_sub(4) else {
                continue;
            };
            let Some(framed) = out.get(start..p.range.end) else {
                continue;
            };
            if self.faults.garbage > 0.0 && self.rng.random_bool(prob(self.faults.garbage)) {
                self.garbage(wire);
            }
            let len = p.range.len();
            let cut = cut_at == Some(i);
            let resend = resend_at == Some(i);
            if !(cut || resend) {
                wire.extend_from_slice(framed);
                continue;
            }
            let frac = self.rng.random_range(0.2..=0.8);
            let keep = (RTP_HEADER + ((len - RTP_HEADER) as f64 * frac) as usize).min(len - 1);
            wire.extend_from_slice(&framed[..4 + keep]);
            if cut {
                bump(&self.counters().truncated);
            } else {
                wire.extend_from_slice(framed);
                bump(&self.counters().truncated_resent);
            }
        }
    }

    /// With probability `p` (×3 for a keyframe, at most 0.9), the index of
    /// one video RTP packet of the frame, picked with a weight of its size.
    fn pick_victim(
        &mut self,
        p: f64,
        packets: &[PacketRef],
        keyframe: bool,
        video: Option<usize>,
    ) -> Option<usize> {
        if p <= 0.0 {
            return None;
        }
        let weight = |pk: &PacketRef| {
            let ok = !pk.rtcp && Some(pk.stream) == video && pk.range.len() > RTP_HEADER;
            if ok {
                pk.range.len()
            } else {
                0
            }
        };
        let total: usize = packets.iter().map(weight).sum();
        let bias = if keyframe { KEYFRAME_BIAS } else { 1.0 };
        if total == 0 || !self.rng.random_bool((prob(p) * bias).min(MAX_TRUNCATE)) {
            return None;
        }
        let mut r = self.rng.random_range(0..total);
        packets.iter().position(|pk| {
            let w = weight(pk);
            if r < w {
                true
            } else {
                r -= w;
                false
            }
        })
    }

    /// Appends 1–200 random bytes that cannot be taken for the start of an
    /// interleaved frame or an RTSP message (`$`, `R`), though `$` may
    /// follow inside.
    fn garbage(&mut self, wire: &mut Vec<u8>) {
        let n = self.rng.random_range(1..=200usize);
        let first = loop {
            let b: u8 = self.rng.random();
            if b != b'$' && b != b'R' {
                break b;
            }
        };
        wire.push(first);
        wire.extend((1..n).map(|_| self.rng.random::<u8>()));
        let c = self.counters();
        bump(&c.garbage_bursts);
        c.garbage_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The datagrams to send for one frame (`out` and `packets` as written
    /// by [`Self::write_frame`] for a UDP session), in order, with the UDP
    /// faults applied to RTP packets: some left out, some held back behind
    /// the next 1–3 packets, some sent twice.
    pub(crate) fn udp_datagrams(
        &mut self,
        out: &[u8],
        packets: &[PacketRef],
        sends: &mut Vec<Datagram>,
    ) {
        for (i, p) in packets.iter().enumerate() {
            if p.rtcp {
                sends.push(Datagram::Packet(i));
                continue;
            }
            if self.faults.udp_loss > 0.0 && self.rng.random_bool(prob(self.faults.udp_loss)) {
                bump(&self.counters().udp_lost);
                continue;
            }
            if self.faults.udp_reorder > 0.0
                && self.rng.random_bool(prob(self.faults.udp_reorder))
                && self.held.len() < MAX_HELD
            {
                if let Some(data) = out.get(p.range.clone()) {
                    let remaining = self.rng.random_range(1..=3);
                    self.held.push_back(Held {
                        remaining,
                        stream: p.stream,
                        data: data.to_vec(),
                    });
                    bump(&self.counters().udp_reordered);
                    continue;
                }
            }
            sends.push(Datagram::Packet(i));
            if self.faults.udp_duplicate > 0.0
                && self.rng.random_bool(prob(self.faults.udp_duplicate))
            {
                sends.push(Datagram::Packet(i));
                bump(&self.counters().udp_duplicated);
            }
            self.release_held(sends);
        }
    }

    /// Counts one packet sent past each held packet; sends those due.
    fn release_held(&mut self, sends: &mut Vec<Datagram>) {
        for h in &mut self.held {
            h.remaining = h.remaining.saturating_sub(1);
        }
        while let Some(pos) = self.held.iter().position(|h| h.remaining == 0) {
            if let Some(h) = self.held.remove(pos) {
                sends.push(Datagram::Held {
                    stream: h.stream,
                    data: h.data,
                });
            }
        }
    }
}

/// True when a compound RTCP packet holds a PLI (PT 206, FMT 1) or a FIR
/// (PT 206, FMT 4). Stops at the first malformed header.
pub(crate) fn is_keyframe_request(rtcp: &[u8]) -> bool {
    any_rtcp(rtcp, |pt, fmt| pt == RTCP_PSFB && (fmt == 1 || fmt == 4))
}

/// True when a compound RTCP packet holds a receiver report (PT 201, with
/// or without report blocks). Stops at the first malformed header.
fn has_receiver_report(rtcp: &[u8]) -> bool {
    any_rtcp(rtcp, |pt, _| pt == RTCP_RR)
}

/// True when one packet of a compound RTCP packet has a `(PT, FMT)` that
/// `wanted` accepts; the packets after a malformed header are not looked
/// at (their length cannot be trusted).
fn any_rtcp(mut rtcp: &[u8], wanted: impl Fn(u8, u8) -> bool) -> bool {
    while rtcp.len() >= 4 {
        if rtcp[0] >> 6 != 2 {
            return false;
        }
        if wanted(rtcp[1], rtcp[0] & 0x1f) {
            return true;
        }
        let len = (usize::from(u16::from_be_bytes([rtcp[2], rtcp[3]])) + 1) * 4;
        let Some(rest) = rtcp.get(len..) else {
            return false;
        };
        rtcp = rest;
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::camera::codec::VideoCodec;
    use crate::sim::clip::clip;
    use std::sync::Arc;

    use super::super::stream::{StreamState, Track};
    use super::*;

    fn session(camera: &str, faults: Faults, tcp: bool) -> (FaultySession, FaultStats) {
        session_of(VideoCodec::H264, camera, faults, tcp)
    }

    /// A session of `camera` sending `codec`, with video and audio.
    fn session_of(
        codec: VideoCodec,
        camera: &str,
        faults: Faults,
        tcp: bool,
    ) -> (FaultySession, FaultStats) {
        let mut s = Streamer::new(clip(codec));
        s.streams.push(StreamState::new(
            Track::Video,
            tcp.then_some((0, 1)),
            "v".into(),
        ));
        s.streams.push(StreamState::new(
            Track::Audio,
            tcp.then_some((2, 3)),
            "a".into(),
        ));
        let stats = FaultStats::default();
        let reg = Arc::new(Registry::default());
        (
            FaultySession::new(s, camera, faults, stats.clone(), &reg),
            stats,
        )
    }

    /// The TCP wire of `frames` frames.
    fn tcp_run(camera: &str, faults: Faults, frames: usize) -> (Vec<u8>, FaultStats) {
        tcp_run_of(VideoCodec::H264, camera, faults, frames)
    }

    /// The TCP wire of `frames` frames of `codec`.
    fn tcp_run_of(
        codec: VideoCodec,
        camera: &str,
        faults: Faults,
        frames: usize,
    ) -> (Vec<u8>, FaultStats) {
        let (mut s, stats) = session_of(codec, camera, faults, true);
        let (mut out, mut pk, mut wire) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..frames {
            out.clear();
            pk.clear();
            if s.tick() != Tick::Send {
                continue;
            }
            let key = s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk);
            s.tcp_wire(&out, &pk, key, &mut wire);
        }
        (wire, stats)
    }

    #[test]
    fn pli_and_fir_are_recognised_in_compound_packets() {
        let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let fir = [
            0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0, 0, 0,
        ];
        let nack = [0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 5, 0, 0];
        assert!(is_keyframe_request(&[&rr[..], &pli[..]].concat()));
        assert!(is_keyframe_request(&[&rr[..], &fir[..]].concat()));
        assert!(!is_keyframe_request(&rr));
        assert!(!is_keyframe_request(&nack));
        assert!(!is_keyframe_request(&[
            0x80, 201, 0xff, 0xff, 0x81, 206, 0, 2
        ]));
        assert!(!is_keyframe_request(&[]));
        for cut in 0..pli.len() {
            let _ = is_keyframe_request(&pli[..cut]);
        }
    }

    #[test]
    fn no_faults_is_the_plain_stream() {
        let (wire, stats) = tcp_run("cam", Faults::default(), 120);
        assert!(!wire.is_empty());
        assert_eq!(stats.snapshot(), Default::default());
        let (f, _) = session("cam", Faults::default(), true);
        assert!(!f.tcp_faulty() && !f.udp_faulty());
    }

    #[test]
    fn same_seed_and_name_repeat_other_names_differ() {
        let faults = Faults {
            seed: 7,
            truncate: 0.05,
            truncate_resend: 0.05,
            garbage: 0.05,
            ..Faults::default()
        };
        let a = tcp_run("cam", faults.clone(), 200).1.snapshot();
        let b = tcp_run("cam", faults.clone(), 200).1.snapshot();
        let c = tcp_run("other", faults, 200).1.snapshot();
        assert_eq!(a, b);
        assert!(a.truncated > 0 && a.truncated_resent > 0 && a.garbage_bursts > 0);
        assert_ne!(a, c);
    }

    #[test]
    fn udp_faults_keep_every_packet_accounted_for() {
        let faults = Faults {
            udp_loss: 0.1,
            udp_reorder: 0.1,
            udp_duplicate: 0.1,
            ..Faults::default()
        };
        let (mut s, stats) = session("cam", faults, false);
        let (mut out, mut pk, mut sends) = (Vec::new(), Vec::new(), Vec::new());
        let mut rtp = 0u64;
        let mut sent = 0u64;
        for _ in 0..100 {
            out.clear();
            pk.clear();
            sends.clear();
            assert_eq!(s.tick(), Tick::Send);
            s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk);
            rtp += pk.iter().filter(|p| !p.rtcp).count() as u64;
            s.udp_datagrams(&out, &pk, &mut sends);
            sent += sends
                .iter()
                .filter(|d| match d {
                    Datagram::Packet(i) => !pk[*i].rtcp,
                    Datagram::Held { .. } => true,
                })
                .count() as u64;
        }
        let c = stats.snapshot();
        assert!(c.udp_lost > 0 && c.udp_reordered > 0 && c.udp_duplicated > 0);
        let still_held = s.held.len() as u64;
        assert_eq!(sent + c.udp_lost + still_held, rtp + c.udp_duplicated);
    }

    #[test]
    fn periodic_faults_fire_on_their_frames() {
        let faults = Faults {
            stall_every_s: 1.0,
            stall_ms: 300,
            ssrc_change_every_s: 2.0,
            timestamp_jump_every_s: 0.4,
            reboot_every_s: 3.0,
            ..Faults::default()
        };
        let (mut s, stats) = session("cam", faults, true);
        let mut ticks = Vec::new();
        for _ in 0..75 {
            ticks.push(s.tick());
        }
        assert_eq!(ticks[24], Tick::Stall(Duration::from_millis(300)));
        assert_eq!(ticks[74], Tick::Reboot);
        let c = stats.snapshot();
        assert_eq!((c.stalls, c.ssrc_changes, c.reboots), (2, 1, 1));
        assert_eq!(c.timestamp_jumps, 7);
    }

    #[test]
    fn keyframe_requests_jump_to_the_next_idr() {
        let (mut s, stats) = session("cam", Faults::default(), true);
        let (mut out, mut pk) = (Vec::new(), Vec::new());
        let mut keys = Vec::new();
        for n in 0..60 {
            if n == 5 {
                s.handle_rtcp(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
            }
            keys.push(s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk));
        }
        assert!(keys[0] && keys[5] && keys[55]);
        assert_eq!(keys.iter().filter(|&&k| k).count(), 3);
        assert_eq!(stats.snapshot().keyframe_requests_honoured, 1);

        let ignore = Faults {
            honour_pli: false,
            ..Faults::default()
        };
        let (mut s, stats) = session("cam", ignore, true);
        s.handle_rtcp(&[0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk);
        assert!(!s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk));
        assert_eq!(stats.snapshot().keyframe_requests_honoured, 0);
    }

    /// The video access units of `frames` frames of a UDP session,
    /// through camgate's H.265 depacketizer, sent datagram by datagram
    /// (UDP faults applied); `before(n, session)` runs before frame `n`.
    fn h265_pictures(
        s: &mut FaultySession,
        frames: usize,
        mut before: impl FnMut(usize, &mut FaultySession),
    ) -> Vec<crate::h264::AccessUnit> {
        use crate::rtp::RtpPacket;
        let mut d = crate::h265::Depacketizer::new(None);
        let (mut out, mut pk, mut sends) = (Vec::new(), Vec::new(), Vec::new());
        let mut aus = Vec::new();
        for n in 0..frames {
            before(n, s);
            out.clear();
            pk.clear();
            sends.clear();
            if s.tick() != Tick::Send {
                continue;
            }
            s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk);
            s.udp_datagrams(&out, &pk, &mut sends);
            for datagram in &sends {
                let data = match datagram {
                    Datagram::Packet(i) if pk[*i].stream == 0 && !pk[*i].rtcp => {
                        out[pk[*i].range.clone()].to_vec()
                    }
                    Datagram::Held { stream: 0, data } => data.clone(),
                    _ => continue,
                };
                let rtp = RtpPacket::parse(bytes::Bytes::from(data)).expect("sim RTP parses");
                d.push(&rtp);
                while let Some(au) = d.pull() {
                    aus.push(au);
                }
            }
        }
        aus
    }

    /// True when `au` carries a VPS, an SPS and a PPS in band.
    fn has_h265_params(au: &crate::h264::AccessUnit) -> bool {
        use crate::h265::{header, nal_type};
        [nal_type::VPS, nal_type::SPS, nal_type::PPS]
            .iter()
            .all(|t| {
                au.nals
                    .iter()
                    .any(|n| header(n).map(|h| h.nal_type) == Some(*t))
            })
    }

    #[test]
    fn h265_pli_and_fir_give_an_irap_at_once() {
        use crate::h265::analyzer::Analyzer;
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let fir = [
            0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0, 0, 0,
        ];
        let (mut s, stats) = session_of(VideoCodec::H265, "cam", Faults::default(), false);
        let aus = h265_pictures(&mut s, 60, |n, s| match n {
            5 => s.handle_rtcp(&pli),
            20 => s.handle_rtcp(&fir),
            _ => {}
        });
        assert_eq!(aus.len(), 60);
        let irap: Vec<usize> = (0..aus.len())
            .filter(|&i| crate::h265::is_irap(&aus[i]))
            .collect();
        // The clip's own IRAPs at 0 and 50 moved: 5 and 20 by request,
        // then every 50 frames from there.
        assert_eq!(irap, [0, 5, 20]);
        let mut analyzer = Analyzer::new(None);
        for (i, au) in aus.iter().enumerate() {
            let a = analyzer.analyze(au);
            assert!(a.damage.is_empty(), "picture {i}: {:?}", a.damage);
            assert_eq!(a.slices, 4, "picture {i}");
            assert_eq!(has_h265_params(au), a.irap, "picture {i}");
        }
        assert_eq!(stats.snapshot().keyframe_requests_honoured, 2);

        // Not honoured: the clip's own IRAPs only.
        let ignore = Faults {
            honour_pli: false,
            ..Faults::default()
        };
        let (mut s, _) = session_of(VideoCodec::H265, "cam", ignore, false);
        let aus = h265_pictures(&mut s, 60, |n, s| {
            if n == 5 {
                s.handle_rtcp(&pli);
            }
        });
        let irap: Vec<usize> = (0..aus.len())
            .filter(|&i| crate::h265::is_irap(&aus[i]))
            .collect();
        assert_eq!(irap, [0, 50]);
    }

    #[test]
    fn h265_sprop_only_and_ssrc_change() {
        use crate::camera::codec::VideoParams;
        use crate::h265::analyzer::Analyzer;
        let VideoParams::H265(params) = &clip(VideoCodec::H265).info.params else {
            panic!("the H.265 clip has H.265 parameter sets");
        };
        let faults = Faults {
            sprop_only: true,
            ssrc_change_every_s: 0.5,
            ..Faults::default()
        };
        let (mut s, stats) = session_of(VideoCodec::H265, "cam", faults, false);
        let aus = h265_pictures(&mut s, 40, |_, _| {});
        assert_eq!(stats.snapshot().ssrc_changes, 3);
        // An encoder restart starts at an IRAP; no VPS/SPS/PPS in band, the
        // SDP's are enough.
        let irap: Vec<usize> = (0..aus.len())
            .filter(|&i| crate::h265::is_irap(&aus[i]))
            .collect();
        // 0.5 s is 13 frames (12.5 rounded): ticks 13, 26 and 39.
        assert_eq!(irap, [0, 12, 25, 38]);
        let mut analyzer = Analyzer::new(Some(params));
        for (i, au) in aus.iter().enumerate() {
            assert!(!has_h265_params(au), "picture {i}");
            let a = analyzer.analyze(au);
            assert!(a.damage.is_empty(), "picture {i}: {:?}", a.damage);
        }
    }

    #[test]
    fn h265_streams_suffer_every_fault() {
        // TCP: truncation (cut and resent) and garbage.
        let faults = Faults {
            seed: 7,
            truncate: 0.05,
            truncate_resend: 0.05,
            garbage: 0.05,
            stall_every_s: 1.0,
            stall_ms: 300,
            timestamp_jump_every_s: 1.5,
            reboot_every_s: 3.0,
            ..Faults::default()
        };
        let (wire, stats) = tcp_run_of(VideoCodec::H265, "cam", faults.clone(), 100);
        let (plain, _) = tcp_run_of(VideoCodec::H265, "cam", Faults::default(), 100);
        assert!(!wire.is_empty() && wire != plain);
        let c = stats.snapshot();
        assert!(c.truncated > 0 && c.truncated_resent > 0 && c.garbage_bursts > 0);
        assert_eq!((c.stalls, c.timestamp_jumps, c.reboots), (3, 2, 1));
        assert_eq!(
            tcp_run_of(VideoCodec::H265, "cam", faults, 100)
                .1
                .snapshot(),
            c
        );

        // UDP: loss and reordering reach the H.265 depacketizer as
        // damaged pictures.
        let faults = Faults {
            seed: 9,
            udp_loss: 0.05,
            udp_reorder: 0.05,
            udp_duplicate: 0.02,
            ..Faults::default()
        };
        let (mut s, stats) = session_of(VideoCodec::H265, "cam", faults, false);
        let aus = h265_pictures(&mut s, 100, |_, _| {});
        let c = stats.snapshot();
        assert!(c.udp_lost > 0 && c.udp_reordered > 0 && c.udp_duplicated > 0);
        let damaged = aus.iter().filter(|a| a.damaged || a.loss_before).count();
        assert!(damaged > 5, "{damaged} damaged pictures of {}", aus.len());
    }

    #[test]
    fn sessions_without_receiver_reports_end_after_require_rr_s() {
        let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
        let sr_only = [0x80, 200, 0, 1, 1, 2, 3, 4];
        let faults = Faults {
            require_rr_s: 2.0,
            ..Faults::default()
        };
        // 2 s is 50 frames: the 51st tick without a report ends the session.
        let (mut s, stats) = session("cam", faults.clone(), true);
        let ticks: Vec<Tick> = (0..51).map(|_| s.tick()).collect();
        assert!(ticks[..50].iter().all(|t| *t == Tick::Send));
        assert_eq!(ticks[50], Tick::NoReceiverReport);
        assert_eq!(stats.snapshot().rr_timeouts, 1);

        // A report every second keeps it going; other RTCP does not count.
        let (mut s, stats) = session("cam", faults, false);
        for n in 1..=500 {
            if n % 25 == 0 {
                s.handle_rtcp(&rr);
            } else {
                s.handle_rtcp(&sr_only);
            }
            assert_eq!(s.tick(), Tick::Send, "tick {n}");
        }
        for _ in 0..25 {
            s.handle_rtcp(&sr_only);
            s.handle_rtcp(&[0x80, 201]);
            assert_eq!(s.tick(), Tick::Send);
        }
        // The last report came before tick 500: tick 550 is one too many.
        let last: Vec<Tick> = (0..25).map(|_| s.tick()).collect();
        assert!(last[..24].iter().all(|t| *t == Tick::Send));
        assert_eq!(last[24], Tick::NoReceiverReport);
        assert_eq!(stats.snapshot().rr_timeouts, 1);

        // Off by default.
        let (mut s, _) = session("cam", Faults::default(), true);
        assert!((0..1000).all(|_| s.tick() == Tick::Send));
    }

    #[test]
    fn extreme_settings_do_not_panic() {
        let faults = Faults {
            truncate: 1.0,
            truncate_resend: f64::NAN,
            garbage: 1.0,
            udp_loss: 2.0,
            udp_reorder: 1.0,
            udp_duplicate: -1.0,
            stall_every_s: f64::INFINITY,
            stall_ms: u64::MAX,
            ssrc_change_every_s: 1e-9,
            timestamp_jump_every_s: -1.0,
            reboot_every_s: f64::NAN,
            require_rr_s: f64::INFINITY,
            ..Faults::default()
        };
        let (wire, stats) = tcp_run("cam", faults.clone(), 60);
        assert!(!wire.is_empty());
        assert!(stats.snapshot().truncated > 0);
        let (mut s, _) = session("cam", faults, false);
        let (mut out, mut pk, mut sends) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..60 {
            let _ = s.tick();
            s.write_frame(SystemTime::UNIX_EPOCH, &mut out, &mut pk);
            s.udp_datagrams(&out, &pk, &mut sends);
        }
    }
}
