//! RTP to access units (RFC 6184 section 5.6-5.8: single NAL, STAP-A, FU-A).
//!
//! Tolerated camera quirks, each on purpose:
//! - no marker bit at all: an access unit also ends when the RTP timestamp
//!   changes;
//! - empty RTP payloads (keep-alives) are ignored, but their marker counts;
//! - NAL unit types 30 and 31 (reserved) are ignored, as RFC 6184 5.4 asks.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{nal_type, AccessUnit, ParameterSets};
use crate::rtp::RtpPacket;

/// Largest access unit kept, in NAL payload bytes. Beyond it the access unit
/// is truncated and marked damaged: a camera that never ends a picture
/// (no marker, constant timestamp) must not grow memory without bound.
pub const MAX_ACCESS_UNIT_BYTES: usize = 4 << 20;

/// A backward sequence step up to this many is a late or duplicate packet
/// (dropped); a larger one is a discontinuity (counted as loss).
const MAX_MISORDER: u16 = 100;

/// Turns RTP packets of one H.264 stream, in sequence order, into access
/// units. Call [`Depacketizer::push`] for each packet as it is released in
/// order, then drain [`Depacketizer::pull`] until it returns `None`.
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// Parameter sets from the SDP, replaced by those seen in band.
    params: Option<ParameterSets>,
    /// An in-band SPS waiting for a PPS when there were no parameter sets yet.
    pending_sps: Option<Bytes>,
    /// Sequence number of the last packet accepted, for gap detection.
    last_seq: Option<u16>,
    /// Packets were lost while no access unit was open: flag the next one.
    loss_pending: bool,
    /// The access unit being assembled.
    cur: Option<Building>,
    /// Finished access units, oldest first.
    ready: VecDeque<AccessUnit>,
    /// FU-A fragments (sharing the packets' buffers) of the NAL unit being
    /// reassembled; reused between NAL units to avoid allocating.
    frags: Vec<Bytes>,
}

/// An access unit in progress.
#[derive(Debug)]
struct Building {
    /// RTP timestamp shared by its packets.
    timestamp: u32,
    /// Complete NAL units so far.
    nals: Vec<Bytes>,
    /// Bytes in `nals` plus the fragments of the FU-A in progress.
    bytes: usize,
    /// See [`AccessUnit::damaged`].
    damaged: bool,
    /// See [`AccessUnit::loss_before`].
    loss_before: bool,
    /// The size bound was hit: further payload of this access unit is dropped.
    truncated: bool,
    /// Header of the FU-A NAL unit being reassembled (its fragments are in
    /// `Depacketizer::frags`), if one is open.
    fu_header: Option<u8>,
}

impl Depacketizer {
    /// A new depacketizer; `params` are the SDP's parameter sets, if any.
    pub fn new(params: Option<ParameterSets>) -> Self {
        Depacketizer {
            params,
            ..Default::default()
        }
    }

    /// Feeds the next packet in sequence order. A sequence gap since the
    /// previous packet marks the access unit in progress damaged (or the next
    /// one `loss_before`). Never panics on any payload.
    ///
    /// A packet whose sequence number is equal to or up to 100 behind the
    /// previous one is a duplicate or late packet and is ignored.
    pub fn push(&mut self, pkt: &RtpPacket) {
        let mut loss = false;
        if let Some(last) = self.last_seq {
            let delta = pkt.sequence.wrapping_sub(last);
            if delta == 0 || delta > u16::MAX - MAX_MISORDER {
                return;
            }
            loss = delta != 1;
        }
        self.last_seq = Some(pkt.sequence);

        if let Some(cur) = &self.cur {
            if cur.timestamp != pkt.timestamp {
                // The picture ended without a marker (or its marked packet
                // was lost: then `loss` below already damages it).
                if loss {
                    self.damage_cur();
                    self.loss_pending = true;
                    loss = false;
                }
                self.finish();
            }
        }
        if loss {
            if self.cur.is_some() {
                self.damage_cur();
            } else {
                self.loss_pending = true;
            }
        }

        let payload = pkt.payload();
        if !payload.is_empty() {
            self.handle_payload(pkt.timestamp, payload);
        }
        if pkt.marker {
            self.finish();
        }
    }

    /// The next complete access unit, if any.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Parameter sets most recently seen (SDP or in band).
    pub fn parameter_sets(&self) -> Option<&ParameterSets> {
        self.params.as_ref()
    }

    /// Ends the access unit in progress now, as if its last packet had the
    /// marker bit; a pending FU-A is incomplete and damages it. For callers
    /// that know the stream ended (teardown, SSRC change).
    pub fn flush(&mut self) {
        self.finish();
    }

    /// Checks internal invariants and panics if one is broken. Meant for
    /// tests and fuzz targets (call after each `push`/`pull`); never needed
    /// in production.
    ///
    /// Invariants: every finished access unit holds only non-empty NAL units
    /// of types 1-23 with a clear forbidden bit, is within
    /// [`MAX_ACCESS_UNIT_BYTES`], and is empty only when damaged; the access
    /// unit in progress accounts its bytes exactly; FU-A fragments exist only
    /// while a fragmented NAL unit is open.
    pub fn check_invariants(&self) {
        for au in &self.ready {
            assert!(
                au.damaged || !au.nals.is_empty(),
                "empty undamaged access unit"
            );
            assert!(
                au.len_bytes() <= MAX_ACCESS_UNIT_BYTES,
                "oversized access unit"
            );
            for nal in &au.nals {
                assert!(
                    is_valid_nal_header(nal.first().copied()),
                    "bad NAL {nal:02x?}"
                );
            }
        }
        match &self.cur {
            Some(cur) => {
                let frag_bytes: usize = self.frags.iter().map(Bytes::len).sum();
                let nal_bytes: usize = cur.nals.iter().map(Bytes::len).sum();
                assert_eq!(
                    cur.bytes,
                    frag_bytes + nal_bytes + usize::from(cur.fu_header.is_some())
                );
                assert!(cur.bytes <= MAX_ACCESS_UNIT_BYTES);
                assert!(cur.fu_header.is_some() || self.frags.is_empty());
                if let Some(h) = cur.fu_header {
                    assert!(is_valid_nal_header(Some(h)));
                }
                for nal in &cur.nals {
                    assert!(is_valid_nal_header(nal.first().copied()));
                }
            }
            None => assert!(self.frags.is_empty(), "fragments without an access unit"),
        }
        if let Some(p) = &self.params {
            assert_eq!(p.sps.first().map(|b| b & 0x1f), Some(nal_type::SPS));
            assert_eq!(p.pps.first().map(|b| b & 0x1f), Some(nal_type::PPS));
        }
    }

    /// The access unit in progress, opened at `timestamp` if there is none.
    fn cur_mut(&mut self, timestamp: u32) -> &mut Building {
        open(&mut self.cur, &mut self.loss_pending, timestamp)
    }

    /// Marks the access unit in progress damaged and drops its open FU-A:
    /// the lost packets may hold the fragments between.
    fn damage_cur(&mut self) {
        if let Some(cur) = &mut self.cur {
            cur.damaged = true;
            if cur.fu_header.take().is_some() {
                cur.bytes -= 1 + self.frags.iter().map(Bytes::len).sum::<usize>();
                self.frags.clear();
            }
        }
    }

    /// Moves the access unit in progress to the ready queue.
    fn finish(&mut self) {
        if self.cur.as_ref().is_some_and(|c| c.fu_header.is_some()) {
            // The FU-A end fragment never came.
            self.damage_cur();
        }
        if let Some(cur) = self.cur.take() {
            self.ready.push_back(AccessUnit {
                timestamp: cur.timestamp,
                nals: cur.nals,
                damaged: cur.damaged,
                loss_before: cur.loss_before,
            });
        }
    }

    fn handle_payload(&mut self, timestamp: u32, payload: Bytes) {
        let header = payload[0];
        let kind = header & 0x1f;
        match kind {
            1..=23 if header & 0x80 == 0 => {
                self.close_fu();
                self.add_nal(timestamp, payload);
            }
            nal_type::STAP_A if header & 0x80 == 0 => {
                self.close_fu();
                self.handle_stap_a(timestamp, payload);
            }
            nal_type::FU_A if header & 0x80 == 0 => self.handle_fu_a(timestamp, payload),
            30 | 31 if header & 0x80 == 0 => {}
            // Type 0, the forbidden bit, or STAP-B / MTAP16 / MTAP24 / FU-B,
            // which packetization-mode 1 does not allow.
            _ => {
                self.close_fu();
                self.cur_mut(timestamp).damaged = true;
            }
        }
    }

    /// A non-FU-A payload arrived: an open FU-A can no longer complete.
    fn close_fu(&mut self) {
        if self.cur.as_ref().is_some_and(|c| c.fu_header.is_some()) {
            self.damage_cur();
        }
    }

    fn handle_stap_a(&mut self, timestamp: u32, payload: Bytes) {
        let mut rest = payload.slice(1..);
        if rest.is_empty() {
            self.cur_mut(timestamp).damaged = true;
            return;
        }
        while !rest.is_empty() {
            if rest.len() < 2 {
                self.cur_mut(timestamp).damaged = true;
                return;
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if len == 0 || 2 + len > rest.len() {
                self.cur_mut(timestamp).damaged = true;
                return;
            }
            let nal = rest.slice(2..2 + len);
            rest = rest.slice(2 + len..);
            if is_valid_nal_header(Some(nal[0])) {
                self.add_nal(timestamp, nal);
            } else if !matches!(nal[0] & 0x1f, 30 | 31) || nal[0] & 0x80 != 0 {
                self.cur_mut(timestamp).damaged = true;
            }
        }
    }

    fn handle_fu_a(&mut self, timestamp: u32, payload: Bytes) {
        if payload.len() < 2 {
            self.cur_mut(timestamp).damaged = true;
            return;
        }
        let fu = payload[1];
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        let nal_header = (payload[0] & 0xe0) | (fu & 0x1f);
        let data = payload.slice(2..);
        let open_header = self.cur.as_ref().and_then(|c| c.fu_header);
        if start {
            if open_header.is_some() {
                // The previous fragmented NAL unit never ended.
                self.damage_cur();
            }
            let cur = self.cur_mut(timestamp);
            if end || !is_valid_nal_header(Some(nal_header)) {
                // Start and end in one fragment is forbidden (RFC 6184 5.8).
                cur.damaged = true;
                return;
            }
            if cur.truncated || !reserve(cur, 1 + data.len()) {
                return;
            }
            cur.fu_header = Some(nal_header);
            if !data.is_empty() {
                self.frags.push(data);
            }
            return;
        }
        match open_header {
            None => {
                // Continuation without a start: its start was lost (or it was
                // truncated, which already damaged the access unit).
                self.cur_mut(timestamp).damaged = true;
            }
            Some(h) if h != nal_header => self.damage_cur(),
            Some(h) => {
                let cur = self.cur_mut(timestamp);
                if !reserve(cur, data.len()) {
                    self.damage_cur();
                    return;
                }
                if !data.is_empty() {
                    self.frags.push(data);
                }
                if end {
                    let len = 1 + self.frags.iter().map(Bytes::len).sum::<usize>();
                    let mut nal = Vec::with_capacity(len);
                    nal.push(h);
                    for f in self.frags.drain(..) {
                        nal.extend_from_slice(&f);
                    }
                    let cur = self.cur_mut(timestamp);
                    cur.fu_header = None;
                    cur.bytes -= len;
                    self.add_nal(timestamp, Bytes::from(nal));
                }
            }
        }
    }

    /// Appends a complete NAL unit (valid header) to the access unit in
    /// progress, capturing parameter sets.
    fn add_nal(&mut self, timestamp: u32, nal: Bytes) {
        let cur = open(&mut self.cur, &mut self.loss_pending, timestamp);
        if cur.truncated || !reserve(cur, nal.len()) {
            return;
        }
        cur.nals.push(nal.clone());
        match nal[0] & 0x1f {
            nal_type::SPS => match &mut self.params {
                Some(p) => p.sps = nal,
                None => self.pending_sps = Some(nal),
            },
            nal_type::PPS => match (&mut self.params, self.pending_sps.take()) {
                (Some(p), _) => p.pps = nal,
                (None, Some(sps)) => self.params = Some(ParameterSets { sps, pps: nal }),
                (None, None) => {}
            },
            _ => {}
        }
    }
}

/// The access unit in progress, opened at `timestamp` (and taking the
/// pending loss flag) if there is none.
fn open<'a>(
    cur: &'a mut Option<Building>,
    loss_pending: &mut bool,
    timestamp: u32,
) -> &'a mut Building {
    cur.get_or_insert_with(|| Building {
        timestamp,
        nals: Vec::new(),
        bytes: 0,
        damaged: false,
        loss_before: std::mem::take(loss_pending),
        truncated: false,
        fu_header: None,
    })
}

/// Accounts `n` more bytes to `cur`; false (and the access unit truncated
/// and damaged) if that would pass [`MAX_ACCESS_UNIT_BYTES`].
fn reserve(cur: &mut Building, n: usize) -> bool {
    if cur.bytes + n > MAX_ACCESS_UNIT_BYTES {
        cur.truncated = true;
        cur.damaged = true;
        return false;
    }
    cur.bytes += n;
    true
}

/// A NAL unit header an access unit may hold: forbidden bit clear, type 1-23.
fn is_valid_nal_header(b: Option<u8>) -> bool {
    matches!(b, Some(b) if b & 0x80 == 0 && (1..=23).contains(&(b & 0x1f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet builder: (sequence, timestamp, marker, payload).
    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        let mut raw = Vec::new();
        RtpPacket::write(&mut raw, marker, 96, seq, ts, 1, payload);
        RtpPacket::parse(Bytes::from(raw)).unwrap()
    }

    fn run(d: &mut Depacketizer, pkts: &[RtpPacket]) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        for p in pkts {
            d.push(p);
            d.check_invariants();
            while let Some(au) = d.pull() {
                out.push(au);
            }
        }
        out
    }

    fn nals(au: &AccessUnit) -> Vec<Vec<u8>> {
        au.nals.iter().map(|n| n.to_vec()).collect()
    }

    #[test]
    fn single_nal_and_marker() {
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x06, 1]),
                pkt(2, 0, true, &[0x65, 2, 3]),
                pkt(3, 3000, true, &[0x41, 4]),
            ],
        );
        assert_eq!(aus.len(), 2);
        assert_eq!(nals(&aus[0]), vec![vec![0x06, 1], vec![0x65, 2, 3]]);
        assert!(aus[0].is_idr() && !aus[0].damaged && !aus[0].loss_before);
        assert_eq!(aus[1].timestamp, 3000);
    }

    #[test]
    fn stap_a_zero_copy_and_params() {
        let mut d = Depacketizer::new(None);
        assert!(d.parameter_sets().is_none());
        let stap = [
            0x78, 0, 3, 0x67, 0x42, 0xc0, 0, 2, 0x68, 0xce, 0, 2, 0x65, 9,
        ];
        let p = pkt(7, 10, true, &stap);
        let aus = run(&mut d, std::slice::from_ref(&p));
        assert_eq!(
            nals(&aus[0]),
            vec![vec![0x67, 0x42, 0xc0], vec![0x68, 0xce], vec![0x65, 9]]
        );
        let raw = p.raw.as_ptr_range();
        assert!(
            aus[0].nals.iter().all(|n| raw.contains(&n.as_ptr())),
            "STAP-A NALs must share the packet buffer"
        );
        let ps = d.parameter_sets().unwrap();
        assert_eq!(
            (&ps.sps[..], &ps.pps[..]),
            (&[0x67, 0x42, 0xc0][..], &[0x68, 0xce][..])
        );
        // A later in-band SPS replaces the SDP's.
        let sdp = ParameterSets {
            sps: Bytes::from_static(&[0x67, 1]),
            pps: Bytes::from_static(&[0x68, 2]),
        };
        let mut d = Depacketizer::new(Some(sdp));
        run(&mut d, &[pkt(1, 0, true, &[0x67, 7])]);
        assert_eq!(&d.parameter_sets().unwrap().sps[..], &[0x67, 7]);
        assert_eq!(&d.parameter_sets().unwrap().pps[..], &[0x68, 2]);
    }

    #[test]
    fn stap_a_malformed() {
        for bad in [
            &[0x18][..],
            &[0x18, 0],
            &[0x18, 0, 5, 0x65],
            &[0x18, 0, 0],
            &[0x18, 0, 1, 0x1c],
        ] {
            let mut d = Depacketizer::new(None);
            let aus = run(&mut d, &[pkt(1, 0, true, bad)]);
            assert_eq!(aus.len(), 1);
            assert!(aus[0].damaged, "{bad:02x?}");
        }
        // A good NAL before the bad length is kept.
        let mut d = Depacketizer::new(None);
        let aus = run(&mut d, &[pkt(1, 0, true, &[0x18, 0, 1, 0x41, 0, 9, 0x41])]);
        assert_eq!(nals(&aus[0]), vec![vec![0x41]]);
        assert!(aus[0].damaged);
    }

    #[test]
    fn fu_a_reassembly() {
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(65534, 0, false, &[0x7c, 0x85, 1, 2]),
                pkt(65535, 0, false, &[0x7c, 0x05, 3]),
                pkt(0, 0, false, &[0x7c, 0x45, 4, 5]),
                pkt(1, 0, true, &[0x06, 6]),
            ],
        );
        assert_eq!(
            nals(&aus[0]),
            vec![vec![0x65, 1, 2, 3, 4, 5], vec![0x06, 6]]
        );
        assert!(!aus[0].damaged && !aus[0].loss_before);
    }

    #[test]
    fn fu_a_missing_start_or_end() {
        // Missing start: the rest is dropped, the single NAL kept.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x7c, 0x05, 3]),
                pkt(2, 0, true, &[0x7c, 0x45, 4]),
            ],
        );
        assert!(aus[0].damaged && aus[0].nals.is_empty());
        // Missing end, then a single NAL: no mixing.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x7c, 0x85, 1]),
                pkt(2, 0, true, &[0x41, 2]),
            ],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x41, 2]]);
        assert!(aus[0].damaged);
        // Missing end, then another start.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x7c, 0x85, 1]),
                pkt(2, 0, false, &[0x7c, 0x81, 2]),
                pkt(3, 0, true, &[0x7c, 0x41, 3]),
            ],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x61, 2, 3]]);
        assert!(aus[0].damaged);
        // Missing end at the marker.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(1, 0, true, &[0x7c, 0x85, 1]), pkt(2, 9, true, &[0x41])],
        );
        assert!(aus[0].damaged && aus[0].nals.is_empty());
        assert!(!aus[1].damaged);
        // Start and end together, a type change mid-NAL, and a 1-byte FU.
        for bad in [&[0x7c, 0xc5, 1][..], &[0x7c][..]] {
            let mut d = Depacketizer::new(None);
            assert!(run(&mut d, &[pkt(1, 0, true, bad)])[0].damaged);
        }
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x7c, 0x85, 1]),
                pkt(2, 0, true, &[0x7c, 0x41, 2]),
            ],
        );
        assert!(aus[0].damaged && aus[0].nals.is_empty());
    }

    #[test]
    fn timestamp_change_without_marker() {
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x65, 1]),
                pkt(2, 0, false, &[0x65, 2]),
                pkt(3, 3000, false, &[0x41, 3]),
                pkt(4, 6000, false, &[0x41, 4]),
            ],
        );
        assert_eq!(aus.len(), 2);
        assert_eq!(aus[0].nals.len(), 2);
        assert!(!aus[0].damaged && !aus[1].damaged);
        d.flush();
        assert_eq!(d.pull().unwrap().timestamp, 6000);
    }

    #[test]
    fn loss_inside_and_before() {
        // Gap inside an access unit (same timestamp).
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(1, 0, false, &[0x65, 1]), pkt(3, 0, true, &[0x65, 2])],
        );
        assert!(aus[0].damaged && !aus[0].loss_before);
        // Gap after a marker: the next access unit has loss before it.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(65535, 0, true, &[0x65, 1]),
                pkt(2, 3000, true, &[0x41, 2]),
            ],
        );
        assert!(!aus[0].damaged && !aus[1].damaged && aus[1].loss_before);
        // Gap with a timestamp change and no marker: the marker may be lost.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(1, 0, false, &[0x65, 1]), pkt(3, 3000, true, &[0x41, 2])],
        );
        assert!(aus[0].damaged && aus[1].loss_before && !aus[1].damaged);
        // Duplicates and late packets are ignored.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(10, 0, false, &[0x65, 1]),
                pkt(10, 0, false, &[0x65, 1]),
                pkt(5, 0, false, &[0x65, 1]),
                pkt(11, 0, true, &[0x65, 2]),
            ],
        );
        assert_eq!(aus[0].nals.len(), 2);
        assert!(!aus[0].damaged);
        // A big backward jump is a discontinuity.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1000, 0, true, &[0x65, 1]),
                pkt(10, 3000, true, &[0x41, 1]),
            ],
        );
        assert!(aus[1].loss_before);
    }

    #[test]
    fn forbidden_and_unsupported_types() {
        for bad in [0x00u8, 0x80 | 0x41, 0x19, 0x1a, 0x1b, 0x1d] {
            let mut d = Depacketizer::new(None);
            let aus = run(
                &mut d,
                &[
                    pkt(1, 0, false, &[bad, 1, 2, 3]),
                    pkt(2, 0, true, &[0x41, 1]),
                ],
            );
            assert!(aus[0].damaged, "type byte {bad:#x}");
            assert_eq!(nals(&aus[0]), vec![vec![0x41, 1]]);
        }
        // Reserved types 30/31 are ignored, empty payloads too.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x1e, 1]),
                pkt(2, 0, false, &[]),
                pkt(3, 0, true, &[0x41, 1]),
            ],
        );
        assert!(!aus[0].damaged);
        assert_eq!(aus[0].nals.len(), 1);
        // A marker on an empty payload still ends the access unit.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(1, 0, false, &[0x41, 1]), pkt(2, 0, true, &[])],
        );
        assert_eq!(aus.len(), 1);
    }

    #[test]
    fn bounded_access_unit() {
        let mut d = Depacketizer::new(None);
        let chunk = vec![0xaa; 60_000];
        let mut first = vec![0x7c, 0x85];
        first.extend_from_slice(&chunk);
        d.push(&pkt(0, 0, false, &first));
        let mut mid = vec![0x7c, 0x05];
        mid.extend_from_slice(&chunk);
        let mut seq = 1u16;
        for _ in 0..80 {
            d.push(&pkt(seq, 0, false, &mid));
            d.check_invariants();
            seq += 1;
        }
        // Single NALs after the truncation are dropped too.
        let mut single = chunk.clone();
        single[0] = 0x41;
        d.push(&pkt(seq, 0, false, &single));
        d.push(&pkt(seq + 1, 0, true, &[0x7c, 0x45, 1]));
        d.check_invariants();
        let au = d.pull().unwrap();
        assert!(au.damaged);
        assert!(au.len_bytes() <= MAX_ACCESS_UNIT_BYTES);
        // The next access unit is unaffected.
        d.push(&pkt(seq + 2, 3000, true, &[0x41, 1]));
        assert!(!d.pull().unwrap().damaged);
    }

    proptest::proptest! {
        /// Arbitrary packet scripts (biased to interesting headers) never
        /// panic or break the invariants; what comes out is well formed.
        #[test]
        fn arbitrary_scripts_keep_invariants(script in proptest::collection::vec(
            (
                proptest::prop_oneof![proptest::strategy::Just(1u16), 0u16..4, proptest::arbitrary::any::<u16>()],
                proptest::prop_oneof![proptest::strategy::Just(0u32), proptest::strategy::Just(3000u32), proptest::arbitrary::any::<u32>()],
                proptest::arbitrary::any::<bool>(),
                proptest::prop_oneof![
                    proptest::sample::select(vec![0x01u8, 0x05, 0x07, 0x08, 0x18, 0x1c, 0x7c, 0x00, 0x19, 0x1d, 0x1e, 0x85]),
                    proptest::arbitrary::any::<u8>()
                ],
                proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..12),
            ),
            0..40,
        )) {
            let mut d = Depacketizer::new(None);
            let (mut seq, mut ts) = (0u16, 0u32);
            for (dseq, dts, marker, first, rest) in script {
                seq = seq.wrapping_add(dseq);
                ts = ts.wrapping_add(dts);
                let mut payload = vec![first];
                payload.extend_from_slice(&rest);
                d.push(&pkt(seq, ts, marker, &payload));
                d.check_invariants();
                while d.pull().is_some() {
                    d.check_invariants();
                }
            }
            d.flush();
            d.check_invariants();
        }
    }
}
