//! The RTCP receiver side of one RTSP session (RFC 3550 section 6.4.2
//! receiver reports, RFC 4585/5104 PLI and FIR): what was received per
//! stream, the last sender report, the report schedule and the FIR
//! sequence number. Sans-IO: it writes packets into buffers and takes the
//! time as an argument; the driver sends them.
//!
//! Call order: [`RtcpReceiver::add_stream`] per stream before media flows,
//! [`RtcpReceiver::handle_rtp`] / [`RtcpReceiver::handle_rtcp`] per packet,
//! [`RtcpReceiver::start`] once playing; then send a report for every
//! stream whenever [`RtcpReceiver::handle_timeout`] says reports are due
//! (at [`RtcpReceiver::poll_timeout`]).

use std::time::{Duration, Instant};

use super::rtcp::{self, ReceiverStats};

/// Receiver reports go out this often: some cameras end sessions that send
/// none (RFC 3550 leaves the interval to the profile; 5 s is its minimum).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The CNAME camgate puts in its SDES items.
const CNAME: &str = "camgate";

/// What is known of one received stream.
#[derive(Debug, Default)]
struct Reception {
    /// Loss statistics for report blocks.
    stats: ReceiverStats,
    /// The sender's SSRC, from its last RTP packet; no report before one.
    source: Option<u32>,
    /// The middle 32 bits of the last SR's NTP time, and when it arrived
    /// (for LSR/DLSR, so the camera can measure the round trip).
    last_sr: Option<(u32, Instant)>,
}

/// The receiver side of RTCP for the streams of one session.
#[derive(Debug)]
pub struct RtcpReceiver {
    /// Our SSRC in reports and feedback.
    ssrc: u32,
    /// Per stream, indexed as [`RtcpReceiver::add_stream`] returned.
    streams: Vec<Reception>,
    /// FIR command sequence number (RFC 5104 4.3.1.1), bumped per request.
    fir_seq: u8,
    /// When the next reports are due; `None` until [`RtcpReceiver::start`].
    next_report: Option<Instant>,
}

impl RtcpReceiver {
    /// A receiver that signs its packets with `ssrc` (pick it at random).
    pub fn new(ssrc: u32) -> Self {
        RtcpReceiver {
            ssrc,
            streams: Vec::new(),
            fir_seq: 0,
            next_report: None,
        }
    }

    /// Registers a stream and returns its index for the other methods.
    pub fn add_stream(&mut self) -> usize {
        self.streams.push(Reception::default());
        self.streams.len() - 1
    }

    /// Accounts for one RTP packet of `stream` (in arrival order, before
    /// reordering). Unknown streams are ignored.
    pub fn handle_rtp(&mut self, stream: usize, sequence: u16, ssrc: u32) {
        if let Some(r) = self.streams.get_mut(stream) {
            r.source = Some(ssrc);
            r.stats.on_packet(sequence);
        }
    }

    /// Takes one RTCP compound packet of `stream` that arrived at `now`:
    /// remembers a sender report for LSR/DLSR, and returns it (its
    /// NTP-to-RTP mapping goes to consumers). Anything else is ignored.
    pub fn handle_rtcp(
        &mut self,
        stream: usize,
        data: &[u8],
        now: Instant,
    ) -> Option<rtcp::SenderReport> {
        let sr = rtcp::parse_sender_report(data)?;
        let r = self.streams.get_mut(stream)?;
        r.last_sr = Some((sr.lsr(), now));
        Some(sr)
    }

    /// Media started playing at `now`: the first reports are due at once
    /// (they open NAT and firewall state towards the camera), then every
    /// [`REPORT_INTERVAL`].
    pub fn start(&mut self, now: Instant) {
        self.next_report = Some(now);
    }

    /// When [`RtcpReceiver::handle_timeout`] is next due; `None` before
    /// [`RtcpReceiver::start`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_report
    }

    /// True when reports are due at `now`: write one per stream with
    /// [`RtcpReceiver::write_report`] and send them. The next are then due
    /// one [`REPORT_INTERVAL`] later.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.next_report {
            Some(due) if now >= due => {
                self.next_report = Some(now + REPORT_INTERVAL);
                true
            }
            _ => false,
        }
    }

    /// Appends a receiver report (RR + SDES CNAME) about `stream` to `out`
    /// and returns the stream's SSRC; `None` (nothing written) before its
    /// first RTP packet. `jitter` is the stream's interarrival jitter in
    /// clock-rate units, from its jitter buffer (the one estimator).
    pub fn write_report(
        &mut self,
        stream: usize,
        jitter: f64,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        let r = self.streams.get_mut(stream)?;
        let source = r.source?;
        let (lsr, dlsr) = match r.last_sr {
            Some((lsr, at)) => (lsr, rtcp::dlsr(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        let jitter = if jitter.is_finite() && jitter > 0.0 {
            jitter.min(f64::from(u32::MAX)) as u32
        } else {
            0
        };
        let block = r.stats.report_block(source, jitter, lsr, dlsr);
        rtcp::write_receiver_report(out, self.ssrc, &[block], CNAME);
        Some(source)
    }

    /// Appends a keyframe request about `stream`: a compound packet with a
    /// receiver report first (RFC 4585 requires one), then PLI (RFC 4585
    /// 6.3.1) and FIR (RFC 5104 4.3.1) with the next FIR sequence number.
    /// `false` (nothing written) before the stream's first RTP packet.
    pub fn write_refresh(
        &mut self,
        stream: usize,
        jitter: f64,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(media) = self.write_report(stream, jitter, now, out) else {
            return false;
        };
        rtcp::write_pli(out, self.ssrc, media);
        self.fir_seq = self.fir_seq.wrapping_add(1);
        rtcp::write_fir(out, self.ssrc, media, self.fir_seq);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::rtcp::{packets, PT_PSFB, PT_RR, PT_SDES};

    /// Report block fields of the first RR in `out`.
    fn block(out: &[u8]) -> (u32, u8, i32, u32, u32, u32, u32) {
        assert_eq!(out[1], PT_RR);
        let word = |i: usize| u32::from_be_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]);
        let lost = word(12);
        let cumulative = ((lost << 8) as i32) >> 8;
        (
            word(8),
            (lost >> 24) as u8,
            cumulative,
            word(16),
            word(20),
            word(24),
            word(28),
        )
    }

    fn sender_report(ntp: u64) -> Vec<u8> {
        let mut out = Vec::new();
        rtcp::write_sender_report(
            &mut out,
            &rtcp::SenderReport {
                ssrc: 0x5555,
                ntp_timestamp: ntp,
                rtp_timestamp: 0,
                packet_count: 1,
                octet_count: 100,
            },
        );
        out
    }

    #[test]
    fn no_report_before_media_and_none_due_before_start() {
        let t0 = Instant::now();
        let mut r = RtcpReceiver::new(1);
        let s = r.add_stream();
        assert_eq!(r.poll_timeout(), None);
        assert!(!r.handle_timeout(t0 + Duration::from_secs(60)));
        let mut out = Vec::new();
        assert_eq!(r.write_report(s, 0.0, t0, &mut out), None);
        assert!(!r.write_refresh(s, 0.0, t0, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn reports_are_due_at_start_then_every_interval() {
        let t0 = Instant::now();
        let mut r = RtcpReceiver::new(1);
        r.add_stream();
        r.start(t0);
        assert_eq!(r.poll_timeout(), Some(t0));
        assert!(r.handle_timeout(t0));
        assert!(!r.handle_timeout(t0 + Duration::from_millis(10)));
        assert_eq!(r.poll_timeout(), Some(t0 + REPORT_INTERVAL));
        assert!(!r.handle_timeout(t0 + REPORT_INTERVAL - Duration::from_millis(1)));
        // A late wake-up: the next is one interval after the report sent.
        let late = t0 + REPORT_INTERVAL + Duration::from_millis(300);
        assert!(r.handle_timeout(late));
        assert_eq!(r.poll_timeout(), Some(late + REPORT_INTERVAL));
    }

    #[test]
    fn report_carries_loss_jitter_and_last_sender_report() {
        let t0 = Instant::now();
        let mut r = RtcpReceiver::new(0xabcd);
        let s = r.add_stream();
        for seq in [10u16, 11, 13, 14] {
            r.handle_rtp(s, seq, 0x5555);
        }
        let ntp = 0x0102_0304_0506_0708;
        r.handle_rtcp(s, &sender_report(ntp), t0);
        let mut out = Vec::new();
        let at = t0 + Duration::from_millis(500);
        assert_eq!(r.write_report(s, 37.6, at, &mut out), Some(0x5555));
        let (source, fraction, cumulative, highest, jitter, lsr, dlsr) = block(&out);
        assert_eq!(source, 0x5555);
        assert_eq!(cumulative, 1);
        assert_eq!(fraction, (256 / 5) as u8);
        assert_eq!(highest, 14);
        assert_eq!(jitter, 37);
        assert_eq!(lsr, 0x0304_0506);
        assert_eq!(dlsr, 65536 / 2);
        // RR then SDES, each well formed.
        let kinds: Vec<u8> = packets(&out).map(|p| p.unwrap().packet_type).collect();
        assert_eq!(kinds, [PT_RR, PT_SDES]);
        // The fraction lost restarts with each report.
        r.handle_rtp(s, 15, 0x5555);
        out.clear();
        r.write_report(s, 0.0, at, &mut out);
        assert_eq!(block(&out).1, 0);
    }

    #[test]
    fn rtcp_other_than_a_sender_report_is_ignored() {
        let t0 = Instant::now();
        let mut r = RtcpReceiver::new(1);
        let s = r.add_stream();
        r.handle_rtp(s, 1, 9);
        r.handle_rtcp(s, b"\x80\xc9\x00", t0);
        r.handle_rtcp(7, &sender_report(1 << 32), t0);
        let mut out = Vec::new();
        r.write_report(s, f64::NAN, t0, &mut out);
        let (.., jitter, lsr, dlsr) = block(&out);
        assert_eq!((jitter, lsr, dlsr), (0, 0, 0));
    }

    #[test]
    fn refresh_is_report_pli_fir_with_rising_fir_sequence() {
        let t0 = Instant::now();
        let mut r = RtcpReceiver::new(0x1111);
        let audio = r.add_stream();
        let video = r.add_stream();
        r.handle_rtp(audio, 1, 0xa);
        r.handle_rtp(video, 1, 0xb);
        for want_seq in [1u8, 2] {
            let mut out = Vec::new();
            assert!(r.write_refresh(video, 0.0, t0, &mut out));
            let all: Vec<_> = packets(&out).map(|p| p.unwrap()).collect();
            let kinds: Vec<(u8, u8)> = all.iter().map(|p| (p.packet_type, p.count)).collect();
            // RR, SDES, PLI (FMT 1), FIR (FMT 4).
            assert_eq!(
                kinds,
                [(PT_RR, 1), (PT_SDES, 1), (PT_PSFB, 1), (PT_PSFB, 4)]
            );
            assert_eq!(block(&out).0, 0xb);
            // FIR FCI: media SSRC then the sequence number.
            let fir = &out[out.len() - 8..];
            assert_eq!(&fir[..4], &0xbu32.to_be_bytes());
            assert_eq!(fir[4], want_seq);
        }
    }
}
