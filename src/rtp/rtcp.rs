//! RTCP (RFC 3550 section 6, RFC 4585/5104 feedback): sender report
//! parsing, RR/SR/SDES/BYE/PLI/FIR writing, and receiver statistics.
//!
//! Writers append to a `Vec<u8>`, so a compound packet is built by calling
//! them in order (RFC 3550 6.1: an SR or RR first, then SDES with CNAME,
//! then optionally BYE or feedback).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RTCP packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// RTCP packet type of payload-specific feedback (RFC 4585 6.1).
pub const PT_PSFB: u8 = 206;

/// Sequence jump (forward) still treated as loss rather than a restart
/// (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// Backward jump still treated as a late packet (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;
/// `bad_seq` value that no 16-bit sequence can match.
const NO_BAD_SEQ: u32 = 1 << 16;

/// Why bytes are not a usable RTCP compound packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtcpError {
    /// A header or body is cut short; carries the offset of the packet.
    #[error("RTCP packet truncated at offset {0}")]
    Truncated(usize),
    /// The version field is not 2; carries the version and offset.
    #[error("RTCP version {version} at offset {offset}, expected 2")]
    BadVersion {
        /// Version found.
        version: u8,
        /// Offset of the packet within the compound packet.
        offset: usize,
    },
    /// A sender report whose length cannot hold its sender info.
    #[error("RTCP sender report too short at offset {0}")]
    ShortSenderReport(usize),
}

/// Receiver-side loss statistics of one RTP stream, as RFC 3550 appendix
/// A.1 and A.3 compute them, fed with each packet's sequence number. The
/// interarrival jitter (A.8) is not estimated here: the stream's jitter
/// buffer ([`crate::rtp::jitter`]) estimates it once, and reports take
/// their figure from there.
///
/// Call [`ReceiverStats::on_packet`] once per received packet in arrival order
/// (before any reordering), then [`ReceiverStats::report_block`] each time a
/// report is sent.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    /// Whether a first packet has been seen (all other fields are unset before).
    initialized: bool,
    /// First sequence number of the current run (A.1 `base_seq`).
    base_seq: u16,
    /// Highest sequence number seen (A.1 `max_seq`).
    max_seq: u16,
    /// Wrap count shifted by 16 (A.1 `cycles`).
    cycles: u32,
    /// Sequence number that would confirm a restart after a large jump.
    bad_seq: u32,
    /// Packets counted as received (duplicates included, as in A.1).
    received: u64,
    /// `expected()` at the last report, for the fraction lost.
    expected_prior: u64,
    /// `received` at the last report, for the fraction lost.
    received_prior: u64,
}

impl ReceiverStats {
    /// Statistics with no packet seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = NO_BAD_SEQ;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Accounts for one received packet with `sequence` in its header.
    /// Returns false when the packet was not counted: a jump of more than
    /// 3000 sequence numbers that is not (yet) confirmed by the next packet
    /// (RFC 3550 A.1).
    pub fn on_packet(&mut self, sequence: u16) -> bool {
        if !self.initialized {
            self.initialized = true;
            self.init_seq(sequence);
            self.received = 1;
            return true;
        }
        let udelta = sequence.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if sequence < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = sequence;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump: a restarted sender, or a stray packet.
            if u32::from(sequence) == self.bad_seq {
                // Two sequential packets: the sender restarted.
                self.init_seq(sequence);
            } else {
                self.bad_seq = u32::from(sequence.wrapping_add(1));
                return false;
            }
        }
        // else: a duplicate or a late packet, counted as received.
        self.received += 1;
        true
    }

    /// The extended highest sequence number received (cycles in the high 16 bits).
    pub fn extended_highest_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected since the first one (A.3).
    pub fn expected(&self) -> u64 {
        if !self.initialized {
            return 0;
        }
        u64::from(self.extended_highest_sequence()) + 1 - u64::from(self.base_seq)
    }

    /// Packets counted as received (duplicates included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative number of packets lost (expected minus received); negative
    /// when duplicates outnumber losses.
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Takes a snapshot for one report block about `source_ssrc` and starts
    /// a new "since last report" interval for the fraction lost. `jitter` is
    /// the stream's interarrival jitter in clock-rate units (RFC 3550 A.8,
    /// from its jitter buffer). `last_sr` is [`SenderReport::lsr`] of the last SR received from the
    /// source (0 if none); `delay_since_last_sr` is in 1/65536 s (see
    /// [`dlsr`]).
    pub fn report_block(
        &mut self,
        source_ssrc: u32,
        jitter: u32,
        last_sr: u32,
        delay_since_last_sr: u32,
    ) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval as u64) << 8)
                .checked_div(expected_interval)
                .unwrap_or(0)
                .min(255) as u8
        };
        ReportBlock {
            ssrc: source_ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_sequence: self.extended_highest_sequence(),
            jitter,
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp (RFC 3550 section 4) of `wall`.
pub fn ntp_timestamp(wall: SystemTime) -> u64 {
    let d = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of `wall`'s NTP timestamp: the unit of the LSR and
/// DLSR fields (1/65536 s), for round-trip times.
pub fn ntp_middle(wall: SystemTime) -> u32 {
    (ntp_timestamp(wall) >> 16) as u32
}

/// Converts the time since the last SR arrived into the DLSR field unit
/// (1/65536 s), saturating.
pub fn dlsr(elapsed: Duration) -> u32 {
    let units = elapsed.as_secs_f64() * 65536.0;
    if units >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        units as u32
    }
}

/// One reception report block (RFC 3550 6.4.1) of an RR or SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the source this block is about.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, within the 24-bit signed range.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in clock-rate units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR (LSR), or 0.
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s (DLSR), or 0.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.extended_highest_sequence.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// The sender information of a sender report (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// NTP timestamp: seconds since 1900 in the high 32 bits, fraction low.
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to `ntp_timestamp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

impl SenderReport {
    /// The middle 32 bits of the NTP timestamp: the LSR field of a report
    /// block answering this SR.
    pub fn lsr(&self) -> u32 {
        (self.ntp_timestamp >> 16) as u32
    }
}

/// Appends a common RTCP header; `length_words` is the packet length in
/// 32-bit words minus one.
fn write_header(out: &mut Vec<u8>, count: u8, packet_type: u8, length_words: u16) {
    out.push(0x80 | (count & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(&length_words.to_be_bytes());
}

/// Appends a receiver report (PT 201) from `reporter_ssrc` with up to 31
/// `blocks` (more are ignored), followed by an SDES packet with `cname`,
/// as a compound packet must carry one (RFC 3550 6.1).
pub fn write_receiver_report(
    out: &mut Vec<u8>,
    reporter_ssrc: u32,
    blocks: &[ReportBlock],
    cname: &str,
) {
    let blocks = &blocks[..blocks.len().min(31)];
    write_header(
        out,
        blocks.len() as u8,
        PT_RR,
        (1 + 6 * blocks.len()) as u16,
    );
    out.extend_from_slice(&reporter_ssrc.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
    write_sdes_cname(out, reporter_ssrc, cname);
}

/// Appends a sender report (PT 200) with no report blocks. Follow it with
/// [`write_sdes_cname`] to make a valid compound packet.
pub fn write_sender_report(out: &mut Vec<u8>, sr: &SenderReport) {
    write_header(out, 0, PT_SR, 6);
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.extend_from_slice(&sr.ntp_timestamp.to_be_bytes());
    out.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&sr.packet_count.to_be_bytes());
    out.extend_from_slice(&sr.octet_count.to_be_bytes());
}

/// Appends an SDES packet (PT 202) with one chunk: `ssrc` and its CNAME
/// (truncated to 255 bytes).
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // ssrc + type + len + text + at least one null, padded to 4 bytes.
    let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    write_header(out, 1, PT_SDES, (chunk / 4) as u16);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    let pad = chunk - (4 + 2 + cname.len());
    out.resize(out.len() + pad, 0);
}

/// Appends a BYE (PT 203) for up to 31 `ssrcs` with an optional reason
/// (truncated to 255 bytes). RFC 3550 6.1: send it after an RR/SR and SDES.
pub fn write_bye(out: &mut Vec<u8>, ssrcs: &[u32], reason: Option<&str>) {
    let ssrcs = &ssrcs[..ssrcs.len().min(31)];
    let reason = reason.map(|r| &r.as_bytes()[..r.len().min(255)]);
    let reason_len = reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
    let words = ssrcs.len() + reason_len / 4;
    write_header(out, ssrcs.len() as u8, PT_BYE, words as u16);
    for s in ssrcs {
        out.extend_from_slice(&s.to_be_bytes());
    }
    if let Some(r) = reason {
        out.push(r.len() as u8);
        out.extend_from_slice(r);
        out.resize(out.len() + reason_len - 1 - r.len(), 0);
    }
}

/// Appends a Picture Loss Indication (RFC 4585 6.3.1: PT 206, FMT 1).
pub fn write_pli(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32) {
    write_header(out, 1, PT_PSFB, 2);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
}

/// Appends a Full Intra Request (RFC 5104 4.3.1: PT 206, FMT 4) for
/// `media_ssrc`. `sequence` must increase by one for each new request
/// (and stay the same for a retransmission).
pub fn write_fir(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, sequence: u8) {
    write_header(out, 4, PT_PSFB, 4);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // media source: unused for FIR
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    out.extend_from_slice(&[sequence, 0, 0, 0]);
}

/// One packet of a compound RTCP packet, as [`packets`] yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacketRef<'a> {
    /// Count / format field (low 5 bits of the first byte).
    pub count: u8,
    /// Packet type.
    pub packet_type: u8,
    /// Bytes after the 4-byte header, padding removed.
    pub body: &'a [u8],
}

/// Iterates over the packets of a compound RTCP packet, yielding an error
/// (and then stopping) at the first malformed header. Never panics.
pub fn packets(data: &[u8]) -> impl Iterator<Item = Result<RtcpPacketRef<'_>, RtcpError>> + '_ {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= data.len() {
            return None;
        }
        let r = next_packet(data, offset);
        match r {
            Ok((p, next)) => {
                offset = next;
                Some(Ok(p))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn next_packet(data: &[u8], offset: usize) -> Result<(RtcpPacketRef<'_>, usize), RtcpError> {
    let hdr = data
        .get(offset..offset + 4)
        .ok_or(RtcpError::Truncated(offset))?;
    let version = hdr[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion { version, offset });
    }
    let len = 4 * (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1);
    let pkt = data
        .get(offset..offset + len)
        .ok_or(RtcpError::Truncated(offset))?;
    let mut body = &pkt[4..];
    if hdr[0] & 0x20 != 0 {
        let pad = usize::from(*pkt.last().unwrap_or(&0));
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::Truncated(offset));
        }
        body = &body[..body.len() - pad];
    }
    Ok((
        RtcpPacketRef {
            count: hdr[0] & 0x1f,
            packet_type: hdr[1],
            body,
        },
        offset + len,
    ))
}

/// The first sender report of a compound RTCP packet; `None` when there is
/// none or the packet is malformed before it (see [`find_sender_report`]
/// for the reason). Never panics.
pub fn parse_sender_report(data: &[u8]) -> Option<SenderReport> {
    find_sender_report(data).ok().flatten()
}

/// Finds the first sender report in a compound RTCP packet. `Ok(None)` when
/// the packets are well formed but none is an SR (e.g. a camera's RR+SDES).
pub fn find_sender_report(data: &[u8]) -> Result<Option<SenderReport>, RtcpError> {
    let mut offset = 0;
    while offset < data.len() {
        let (p, next) = next_packet(data, offset)?;
        if p.packet_type == PT_SR {
            let b = p
                .body
                .get(..24)
                .ok_or(RtcpError::ShortSenderReport(offset))?;
            let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            return Ok(Some(SenderReport {
                ssrc: u32_at(0),
                ntp_timestamp: (u64::from(u32_at(4)) << 32) | u64::from(u32_at(8)),
                rtp_timestamp: u32_at(12),
                packet_count: u32_at(16),
                octet_count: u32_at(20),
            }));
        }
        offset = next;
    }
    Ok(None)
}

/// What a receiver told us in one compound RTCP packet (RFC 3550 RR, RFC
/// 4585 PLI, RFC 5104 FIR): what a server reads from its clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverFeedback {
    /// Report blocks of RRs and SRs (at most 31 per packet are kept).
    pub reports: Vec<ReportBlock>,
    /// A picture loss indication was present.
    pub pli: bool,
    /// A full intra request was present.
    pub fir: bool,
    /// A BYE was present: the receiver is leaving.
    pub bye: bool,
}

/// Reads the report blocks and feedback of a compound RTCP packet, up to
/// the first malformed packet (what came before it is kept). Never panics.
pub fn parse_receiver_feedback(data: &[u8]) -> ReceiverFeedback {
    let mut fb = ReceiverFeedback::default();
    for p in packets(data) {
        let Ok(p) = p else { break };
        let blocks_at = match p.packet_type {
            PT_RR => Some(4),
            PT_SR => Some(24),
            _ => None,
        };
        if let Some(at) = blocks_at {
            for i in 0..usize::from(p.count) {
                let Some(b) = p.body.get(at + 24 * i..at + 24 * (i + 1)) else {
                    break;
                };
                let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let lost = u32_at(4) & 0x00ff_ffff;
                // 24-bit two's complement.
                let lost = ((lost << 8) as i32) >> 8;
                if fb.reports.len() < 31 {
                    fb.reports.push(ReportBlock {
                        ssrc: u32_at(0),
                        fraction_lost: b[4],
                        cumulative_lost: lost,
                        extended_highest_sequence: u32_at(8),
                        jitter: u32_at(12),
                        last_sr: u32_at(16),
                        delay_since_last_sr: u32_at(20),
                    });
                }
            }
        }
        match (p.packet_type, p.count) {
            (PT_PSFB, 1) => fb.pli = true,
            (PT_PSFB, 4) => fb.fir = true,
            (PT_BYE, _) => fb.bye = true,
            _ => {}
        }
    }
    fb
}

#[cfg(test)]
mod feedback_tests {
    use super::*;

    #[test]
    fn reads_what_the_writers_write() {
        let block = ReportBlock {
            ssrc: 0x1234_5678,
            fraction_lost: 12,
            cumulative_lost: -3,
            extended_highest_sequence: 70_000,
            jitter: 45,
            last_sr: 0xaabb_ccdd,
            delay_since_last_sr: 65_536,
        };
        let mut out = Vec::new();
        write_receiver_report(&mut out, 7, &[block], "client");
        write_pli(&mut out, 7, 0x1234_5678);
        write_fir(&mut out, 7, 0x1234_5678, 3);
        write_bye(&mut out, &[7], None);
        let fb = parse_receiver_feedback(&out);
        assert_eq!(fb.reports, vec![block]);
        assert!(fb.pli && fb.fir && fb.bye);
        // Garbage after a good RR keeps the RR.
        let mut cut = Vec::new();
        write_receiver_report(&mut cut, 7, &[block], "c");
        cut.extend_from_slice(&[0x80, 206, 0xff, 0xff]);
        let fb = parse_receiver_feedback(&cut);
        assert_eq!(fb.reports.len(), 1);
        assert!(!fb.pli);
        assert_eq!(
            parse_receiver_feedback(&[1, 2, 3]),
            ReceiverFeedback::default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_in_order_and_wrap() {
        let mut s = ReceiverStats::new();
        for i in 0..10u16 {
            let seq = 65530u16.wrapping_add(i);
            assert!(s.on_packet(seq));
        }
        assert_eq!(s.extended_highest_sequence(), 65536 + 3);
        assert_eq!(s.expected(), 10);
        assert_eq!(s.cumulative_lost(), 0);
        let b = s.report_block(7, 0, 0, 0);
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 0));
    }

    #[test]
    fn stats_loss_and_fraction() {
        let mut s = ReceiverStats::new();
        for seq in [10u16, 11, 12, 15, 16, 17, 18, 19] {
            s.on_packet(seq);
        }
        // expected 10 (10..=19), received 8.
        assert_eq!(s.cumulative_lost(), 2);
        let b = s.report_block(1, 0, 0, 0);
        assert_eq!(b.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(b.extended_highest_sequence, 19);
        // Next interval: 20..=23 with 21 lost: 1 of 4.
        for seq in [20u16, 22, 23] {
            s.on_packet(seq);
        }
        let b = s.report_block(1, 0, 0, 0);
        assert_eq!(b.fraction_lost, 64);
        assert_eq!(b.cumulative_lost, 3);
        // Duplicates: negative loss in the interval reports 0.
        s.on_packet(23);
        s.on_packet(23);
        let b = s.report_block(1, 0, 0, 0);
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.cumulative_lost, 1);
    }

    #[test]
    fn stats_restart_after_big_jump() {
        let mut s = ReceiverStats::new();
        s.on_packet(100);
        s.on_packet(101);
        assert!(!s.on_packet(40000));
        assert!(s.on_packet(40001));
        assert_eq!(s.extended_highest_sequence(), 40001);
        assert_eq!(s.expected(), 1);
        assert_eq!(s.received(), 1);
    }

    #[test]
    fn rr_with_sdes_bytes() {
        let block = ReportBlock {
            ssrc: 0x0102_0304,
            fraction_lost: 0x40,
            cumulative_lost: -2,
            extended_highest_sequence: 0x0001_0005,
            jitter: 0x10,
            last_sr: 0xaabb_ccdd,
            delay_since_last_sr: 0x0001_8000,
        };
        let mut out = Vec::new();
        write_receiver_report(&mut out, 0xdead_beef, &[block], "cg");
        #[rustfmt::skip]
        let want = [
            0x81, 201, 0, 7,
            0xde, 0xad, 0xbe, 0xef,
            1, 2, 3, 4,
            0x40, 0xff, 0xff, 0xfe,
            0, 1, 0, 5,
            0, 0, 0, 0x10,
            0xaa, 0xbb, 0xcc, 0xdd,
            0, 1, 0x80, 0,
            // SDES: chunk = ssrc(4) + 1 + 1 + "cg" + null pad = 12 bytes.
            0x81, 202, 0, 3,
            0xde, 0xad, 0xbe, 0xef,
            1, 2, b'c', b'g',
            0, 0, 0, 0,
        ];
        assert_eq!(out, want);
        let all: Vec<_> = packets(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(find_sender_report(&out), Ok(None));
    }

    #[test]
    fn sdes_padding_lengths() {
        for n in 0..10 {
            let name = "x".repeat(n);
            let mut out = Vec::new();
            write_sdes_cname(&mut out, 1, &name);
            assert_eq!(out.len() % 4, 0);
            assert_eq!(
                usize::from(u16::from_be_bytes([out[2], out[3]])) * 4 + 4,
                out.len()
            );
            assert!(out.len() > 4 + 4 + 2 + n, "room for the null terminator");
            assert_eq!(*out.last().unwrap(), 0);
        }
    }

    #[test]
    fn sr_write_and_parse() {
        let sr = SenderReport {
            ssrc: 0x1122_3344,
            ntp_timestamp: 0xe000_0001_8000_0000,
            rtp_timestamp: 90000,
            packet_count: 5,
            octet_count: 6000,
        };
        let mut out = Vec::new();
        write_sender_report(&mut out, &sr);
        #[rustfmt::skip]
        let want = [
            0x80, 200, 0, 6,
            0x11, 0x22, 0x33, 0x44,
            0xe0, 0, 0, 1,
            0x80, 0, 0, 0,
            0, 1, 0x5f, 0x90,
            0, 0, 0, 5,
            0, 0, 0x17, 0x70,
        ];
        assert_eq!(out, want);
        assert_eq!(sr.lsr(), 0x0001_8000);
        write_sdes_cname(&mut out, sr.ssrc, "camera");
        assert_eq!(find_sender_report(&out), Ok(Some(sr)));
        assert_eq!(parse_sender_report(&out), Some(sr));
        assert_eq!(parse_sender_report(&out[..10]), None);
    }

    #[test]
    fn sr_after_rr_in_compound() {
        let mut out = Vec::new();
        write_receiver_report(&mut out, 9, &[], "a");
        let sr = SenderReport {
            ssrc: 3,
            ntp_timestamp: 1 << 40,
            ..Default::default()
        };
        write_sender_report(&mut out, &sr);
        assert_eq!(find_sender_report(&out), Ok(Some(sr)));
    }

    #[test]
    fn sr_parse_errors() {
        assert_eq!(find_sender_report(&[]), Ok(None));
        assert_eq!(
            find_sender_report(&[0x80, 200, 0]),
            Err(RtcpError::Truncated(0))
        );
        assert_eq!(
            find_sender_report(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion {
                version: 1,
                offset: 0
            })
        );
        assert_eq!(
            find_sender_report(&[0x80, 200, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::ShortSenderReport(0))
        );
        assert_eq!(
            find_sender_report(&[0x80, 200, 0, 6, 0, 0, 0, 0]),
            Err(RtcpError::Truncated(0))
        );
        // Padding bit with a zero pad count.
        assert_eq!(
            find_sender_report(&[0xa0, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Truncated(0))
        );
    }

    #[test]
    fn bye_bytes() {
        let mut out = Vec::new();
        write_bye(&mut out, &[0x0a0b_0c0d], Some("bye"));
        assert_eq!(
            out,
            [0x81, 203, 0, 2, 0x0a, 0x0b, 0x0c, 0x0d, 3, b'b', b'y', b'e']
        );
        out.clear();
        write_bye(&mut out, &[1, 2], None);
        assert_eq!(out, [0x82, 203, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        out.clear();
        write_bye(&mut out, &[1], Some("ok"));
        assert_eq!(out, [0x81, 203, 0, 2, 0, 0, 0, 1, 2, b'o', b'k', 0]);
    }

    #[test]
    fn pli_fir_bytes() {
        let mut out = Vec::new();
        write_pli(&mut out, 1, 0x0203_0405);
        assert_eq!(out, [0x81, 206, 0, 2, 0, 0, 0, 1, 2, 3, 4, 5]);
        out.clear();
        write_fir(&mut out, 1, 0x0203_0405, 7);
        #[rustfmt::skip]
        let want = [
            0x84, 206, 0, 4,
            0, 0, 0, 1,
            0, 0, 0, 0,
            2, 3, 4, 5,
            7, 0, 0, 0,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn dlsr_units() {
        assert_eq!(dlsr(Duration::from_millis(1500)), 0x0001_8000);
        assert_eq!(dlsr(Duration::from_secs(1 << 20)), u32::MAX);
    }

    #[test]
    fn ntp_epoch() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_timestamp(t), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
        assert_eq!(
            ntp_middle(t),
            ((((NTP_UNIX_OFFSET + 1) & 0xffff) as u32) << 16) | 0x8000
        );
    }
}
