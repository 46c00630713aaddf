//! RTP to access units for H.265 (RFC 7798 section 4.4: single NAL unit
//! packets, aggregation packets, fragmentation units), without DONL.
//!
//! Streams with `sprop-max-don-diff` > 0 carry DONL/DOND fields and may
//! send NAL units out of decoding order; [`Depacketizer::from_fmtp`]
//! refuses them with [`H265Error::DonlNotSupported`] rather than misread
//! every aggregation packet and fragment.
//!
//! Tolerated camera quirks, each on purpose (as in the H.264 depacketizer):
//! - no marker bit at all: an access unit also ends when the RTP timestamp
//!   changes;
//! - empty RTP payloads (keep-alives) are ignored, but their marker counts;
//! - payload types 51..=63 (unspecified, H.265 7.4.2.2) are ignored.
//!
//! PACI packets (type 50, RFC 7798 4.4.4) are not unpacked: the access unit
//! they belong to is marked damaged. No camera is known to send them.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{header, nal_type, AccessUnit, H265Error, NalHeader, ParameterSets};
use crate::rtp::RtpPacket;

/// Largest access unit kept, in NAL payload bytes. Beyond it the access unit
/// is truncated and marked damaged: a camera that never ends a picture
/// (no marker, constant timestamp) must not grow memory without bound.
pub const MAX_ACCESS_UNIT_BYTES: usize = crate::h264::depacketizer::MAX_ACCESS_UNIT_BYTES;

/// A backward sequence step up to this many is a late or duplicate packet
/// (dropped); a larger one is a discontinuity (counted as loss).
const MAX_MISORDER: u16 = 100;

/// Turns RTP packets of one H.265 stream, in sequence order, into access
/// units. Call [`Depacketizer::push`] for each packet as it is released in
/// order, then drain [`Depacketizer::pull`] until it returns `None`.
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// Parameter sets from the SDP, replaced by those seen in band.
    params: Option<ParameterSets>,
    /// In-band VPS/SPS/PPS seen while there were no complete parameter
    /// sets yet; they become `params` once all three are there.
    pending: [Option<Bytes>; 3],
    /// Sequence number of the last packet accepted, for gap detection.
    last_seq: Option<u16>,
    /// Packets were lost while no access unit was open: flag the next one.
    loss_pending: bool,
    /// The access unit being assembled.
    cur: Option<Building>,
    /// Finished access units, oldest first.
    ready: VecDeque<AccessUnit>,
    /// FU fragments (sharing the packets' buffers) of the NAL unit being
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
    /// Bytes in `nals` plus the fragments (and 2-byte header) of the FU in
    /// progress.
    bytes: usize,
    /// See [`AccessUnit::damaged`].
    damaged: bool,
    /// See [`AccessUnit::loss_before`].
    loss_before: bool,
    /// The size bound was hit: further payload of this access unit is dropped.
    truncated: bool,
    /// Header of the fragmented NAL unit being reassembled (its fragments
    /// are in `Depacketizer::frags`), if one is open.
    fu_header: Option<[u8; 2]>,
}

impl Depacketizer {
    /// A new depacketizer; `params` are the SDP's parameter sets, if any.
    /// The stream must not use DONL: see [`Depacketizer::from_fmtp`].
    pub fn new(params: Option<ParameterSets>) -> Self {
        Depacketizer {
            params,
            ..Default::default()
        }
    }

    /// A depacketizer for the stream an SDP `a=fmtp` value describes:
    /// parameter sets from `sprop-vps/sps/pps` if present.
    /// [`H265Error::DonlNotSupported`] when the stream needs DONL;
    /// [`H265Error::BadSprop`] when its parameter sets are malformed.
    pub fn from_fmtp(fmtp: &str) -> Result<Self, H265Error> {
        Ok(Self::new(ParameterSets::from_fmtp(fmtp)?))
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
                // was lost: then `loss` damages it).
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
    /// marker bit; a pending FU is incomplete and damages it. For callers
    /// that know the stream ended (teardown, SSRC change).
    pub fn flush(&mut self) {
        self.finish();
    }

    /// Checks internal invariants and panics if one is broken. Meant for
    /// tests and fuzz targets (call after each `push`/`pull`); never needed
    /// in production.
    ///
    /// Invariants: every finished access unit holds only NAL units with a
    /// whole, well-formed header of a type below 48, is within
    /// [`MAX_ACCESS_UNIT_BYTES`], and is empty only when damaged; the access
    /// unit in progress accounts its bytes exactly; FU fragments exist only
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
                assert!(is_valid_nal(nal), "bad NAL {nal:02x?}");
            }
        }
        match &self.cur {
            Some(cur) => {
                let frag_bytes: usize = self.frags.iter().map(Bytes::len).sum();
                let nal_bytes: usize = cur.nals.iter().map(Bytes::len).sum();
                let fu = if cur.fu_header.is_some() { 2 } else { 0 };
                assert_eq!(cur.bytes, frag_bytes + nal_bytes + fu);
                assert!(cur.bytes <= MAX_ACCESS_UNIT_BYTES);
                assert!(cur.fu_header.is_some() || self.frags.is_empty());
                if let Some(h) = cur.fu_header {
                    assert!(is_valid_nal(&h));
                }
                for nal in &cur.nals {
                    assert!(is_valid_nal(nal));
                }
            }
            None => assert!(self.frags.is_empty(), "fragments without an access unit"),
        }
        if let Some(p) = &self.params {
            for (nal, t) in [
                (&p.vps, nal_type::VPS),
                (&p.sps, nal_type::SPS),
                (&p.pps, nal_type::PPS),
            ] {
                assert_eq!(header(nal).map(|h| h.nal_type), Some(t));
            }
        }
    }

    /// Marks the access unit in progress damaged and drops its open FU: the
    /// lost packets may hold the fragments between.
    fn damage_cur(&mut self) {
        if let Some(cur) = &mut self.cur {
            cur.damaged = true;
            if cur.fu_header.take().is_some() {
                cur.bytes -= 2 + self.frags.iter().map(Bytes::len).sum::<usize>();
                self.frags.clear();
            }
        }
    }

    /// Marks the access unit in progress (opened if need be) damaged.
    fn damage_at(&mut self, timestamp: u32) {
        open(&mut self.cur, &mut self.loss_pending, timestamp).damaged = true;
    }

    /// Moves the access unit in progress to the ready queue.
    fn finish(&mut self) {
        if self.cur.as_ref().is_some_and(|c| c.fu_header.is_some()) {
            // The FU end fragment never came.
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
        let Some(h) = header(&payload).filter(|h| h.is_well_formed()) else {
            // One byte, the forbidden bit, or TID 0 (RFC 7798 4.4: such a
            // payload header is invalid).
            self.close_fu();
            self.damage_at(timestamp);
            return;
        };
        match h.nal_type {
            0..=47 => {
                self.close_fu();
                self.add_nal(timestamp, payload);
            }
            nal_type::AP => {
                self.close_fu();
                self.handle_ap(timestamp, payload);
            }
            nal_type::FU => self.handle_fu(timestamp, h, payload),
            nal_type::PACI => {
                self.close_fu();
                self.damage_at(timestamp);
            }
            _ => {}
        }
    }

    /// A non-FU payload arrived: an open FU can no longer complete.
    fn close_fu(&mut self) {
        if self.cur.as_ref().is_some_and(|c| c.fu_header.is_some()) {
            self.damage_cur();
        }
    }

    /// An aggregation packet without DONL/DOND (RFC 7798 4.4.2): after the
    /// payload header, 16-bit sizes each followed by a NAL unit.
    fn handle_ap(&mut self, timestamp: u32, payload: Bytes) {
        let mut rest = payload.slice(2..);
        if rest.is_empty() {
            self.damage_at(timestamp);
            return;
        }
        while !rest.is_empty() {
            if rest.len() < 2 {
                self.damage_at(timestamp);
                return;
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if len < 2 || 2 + len > rest.len() {
                self.damage_at(timestamp);
                return;
            }
            let nal = rest.slice(2..2 + len);
            rest = rest.slice(2 + len..);
            if is_valid_nal(&nal) {
                self.add_nal(timestamp, nal);
            } else if header(&nal).is_none_or(|h| !h.is_well_formed() || h.nal_type < 51) {
                // An AP, FU or PACI inside an AP, or a bad header; types
                // 51..=63 are ignored as in single NAL unit packets.
                self.damage_at(timestamp);
            }
        }
    }

    /// A fragmentation unit without DONL (RFC 7798 4.4.3): payload header,
    /// FU header (S, E, FuType), fragment.
    fn handle_fu(&mut self, timestamp: u32, ph: NalHeader, payload: Bytes) {
        if payload.len() < 3 {
            self.damage_at(timestamp);
            return;
        }
        let fu = payload[2];
        let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
        let nal_header = NalHeader {
            nal_type: fu & 0x3f,
            ..ph
        }
        .to_bytes();
        let data = payload.slice(3..);
        let open_header = self.cur.as_ref().and_then(|c| c.fu_header);
        if start {
            if open_header.is_some() {
                // The previous fragmented NAL unit never ended.
                self.damage_cur();
            }
            let cur = open(&mut self.cur, &mut self.loss_pending, timestamp);
            if end || !is_valid_nal(&nal_header) {
                // Start and end in one fragment is forbidden (RFC 7798
                // 4.4.3), and so is fragmenting an AP, FU or PACI.
                cur.damaged = true;
                return;
            }
            if cur.truncated || !reserve(cur, 2 + data.len()) {
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
                self.damage_at(timestamp);
            }
            Some(h) if h != nal_header => self.damage_cur(),
            Some(h) => {
                let cur = open(&mut self.cur, &mut self.loss_pending, timestamp);
                if !reserve(cur, data.len()) {
                    self.damage_cur();
                    return;
                }
                if !data.is_empty() {
                    self.frags.push(data);
                }
                if end {
                    let len = 2 + self.frags.iter().map(Bytes::len).sum::<usize>();
                    let mut nal = Vec::with_capacity(len);
                    nal.extend_from_slice(&h);
                    for f in self.frags.drain(..) {
                        nal.extend_from_slice(&f);
                    }
                    let cur = open(&mut self.cur, &mut self.loss_pending, timestamp);
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
        let slot = match header(&nal).map(|h| h.nal_type) {
            Some(nal_type::VPS) => 0,
            Some(nal_type::SPS) => 1,
            Some(nal_type::PPS) => 2,
            _ => return,
        };
        match &mut self.params {
            Some(p) => *[&mut p.vps, &mut p.sps, &mut p.pps][slot] = nal,
            None => {
                self.pending[slot] = Some(nal);
                if let [Some(vps), Some(sps), Some(pps)] = &self.pending {
                    self.params = Some(ParameterSets {
                        vps: vps.clone(),
                        sps: sps.clone(),
                        pps: pps.clone(),
                    });
                    self.pending = Default::default();
                }
            }
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

/// A NAL unit an access unit may hold: a whole, well-formed header of a
/// type below 48 (not a payload structure).
fn is_valid_nal(nal: &[u8]) -> bool {
    header(nal).is_some_and(|h| h.is_well_formed() && h.nal_type < nal_type::AP)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet builder: (sequence, timestamp, marker, payload).
    pub(crate) fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        let mut raw = Vec::new();
        RtpPacket::write(&mut raw, marker, 96, seq, ts, 1, payload);
        RtpPacket::parse(Bytes::from(raw)).expect("written packet parses")
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

    // Headers: IDR_W_RADL 0x26 0x01, TRAIL_R 0x02 0x01, VPS 0x40 0x01,
    // SPS 0x42 0x01, PPS 0x44 0x01, prefix SEI 0x4e 0x01, AP 0x60 0x01,
    // FU 0x62 0x01, PACI 0x64 0x01.

    #[test]
    fn single_nal_and_marker() {
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x4e, 0x01, 1]),
                pkt(2, 0, true, &[0x26, 0x01, 2, 3]),
                pkt(3, 3000, true, &[0x02, 0x01, 4]),
            ],
        );
        assert_eq!(aus.len(), 2);
        assert_eq!(
            nals(&aus[0]),
            vec![vec![0x4e, 0x01, 1], vec![0x26, 0x01, 2, 3]]
        );
        assert!(super::super::is_irap(&aus[0]) && !aus[0].damaged && !aus[0].loss_before);
        assert!(!super::super::is_irap(&aus[1]));
        assert_eq!(aus[1].timestamp, 3000);
    }

    #[test]
    fn aggregation_packet_zero_copy_and_params() {
        let mut d = Depacketizer::new(None);
        assert!(d.parameter_sets().is_none());
        let ap = [
            0x60, 0x01, 0, 3, 0x40, 0x01, 7, 0, 3, 0x42, 0x01, 8, 0, 3, 0x44, 0x01, 9, 0, 3, 0x26,
            0x01, 5,
        ];
        let p = pkt(7, 10, true, &ap);
        let aus = run(&mut d, std::slice::from_ref(&p));
        assert_eq!(
            nals(&aus[0]),
            vec![
                vec![0x40, 0x01, 7],
                vec![0x42, 0x01, 8],
                vec![0x44, 0x01, 9],
                vec![0x26, 0x01, 5]
            ]
        );
        assert!(!aus[0].damaged);
        let raw = p.raw.as_ptr_range();
        assert!(
            aus[0].nals.iter().all(|n| raw.contains(&n.as_ptr())),
            "AP NAL units must share the packet buffer"
        );
        let ps = d.parameter_sets().expect("all three seen");
        assert_eq!(&ps.sps[..], &[0x42, 0x01, 8]);
        // A later in-band SPS replaces the SDP's.
        let sdp = ParameterSets {
            vps: Bytes::from_static(&[0x40, 0x01, 1]),
            sps: Bytes::from_static(&[0x42, 0x01, 2]),
            pps: Bytes::from_static(&[0x44, 0x01, 3]),
        };
        let mut d = Depacketizer::new(Some(sdp));
        run(&mut d, &[pkt(1, 0, true, &[0x42, 0x01, 7])]);
        assert_eq!(&d.parameter_sets().unwrap().sps[..], &[0x42, 0x01, 7]);
        assert_eq!(&d.parameter_sets().unwrap().pps[..], &[0x44, 0x01, 3]);
        // SPS alone in band: not yet parameter sets.
        let mut d = Depacketizer::new(None);
        run(&mut d, &[pkt(1, 0, true, &[0x42, 0x01, 7])]);
        assert!(d.parameter_sets().is_none());
    }

    #[test]
    fn aggregation_packet_malformed() {
        for bad in [
            &[0x60, 0x01][..],
            &[0x60, 0x01, 0],
            &[0x60, 0x01, 0, 5, 0x26, 0x01],
            &[0x60, 0x01, 0, 0],
            &[0x60, 0x01, 0, 1, 0x26],
            // A nested FU, a forbidden bit, a TID of 0.
            &[0x60, 0x01, 0, 3, 0x62, 0x01, 0x93],
            &[0x60, 0x01, 0, 3, 0xa6, 0x01, 1],
            &[0x60, 0x01, 0, 3, 0x26, 0x00, 1],
        ] {
            let mut d = Depacketizer::new(None);
            let aus = run(&mut d, &[pkt(1, 0, true, bad)]);
            assert_eq!(aus.len(), 1);
            assert!(aus[0].damaged, "{bad:02x?}");
        }
        // A good NAL unit before the bad length is kept; an unspecified
        // type inside is skipped without damage.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(
                1,
                0,
                true,
                &[0x60, 0x01, 0, 3, 0x02, 0x01, 1, 0, 2, 0x7e, 0x01],
            )],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x02, 0x01, 1]]);
        assert!(!aus[0].damaged);
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[pkt(1, 0, true, &[0x60, 0x01, 0, 3, 0x02, 0x01, 1, 0, 9, 2])],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x02, 0x01, 1]]);
        assert!(aus[0].damaged);
    }

    #[test]
    fn fragmentation_unit_reassembly() {
        // An IDR_W_RADL (19) in three fragments across a sequence wrap; the
        // payload header's layer id and TID go into the NAL header.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(65534, 0, false, &[0x62, 0x02, 0x80 | 19, 1, 2]),
                pkt(65535, 0, false, &[0x62, 0x02, 19, 3]),
                pkt(0, 0, false, &[0x62, 0x02, 0x40 | 19, 4, 5]),
                pkt(1, 0, true, &[0x50, 0x01, 6]),
            ],
        );
        assert_eq!(
            nals(&aus[0]),
            vec![vec![0x26, 0x02, 1, 2, 3, 4, 5], vec![0x50, 0x01, 6]]
        );
        assert!(!aus[0].damaged && !aus[0].loss_before);
    }

    #[test]
    fn fragmentation_unit_missing_start_or_end() {
        // Missing start: the rest is dropped.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x62, 0x01, 1, 3]),
                pkt(2, 0, true, &[0x62, 0x01, 0x41, 4]),
            ],
        );
        assert!(aus[0].damaged && aus[0].nals.is_empty());
        // Missing end, then a single NAL unit: no mixing.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x62, 0x01, 0x81, 1]),
                pkt(2, 0, true, &[0x02, 0x01, 2]),
            ],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x02, 0x01, 2]]);
        assert!(aus[0].damaged);
        // Missing end, then another start.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x62, 0x01, 0x81, 1]),
                pkt(2, 0, false, &[0x62, 0x01, 0x80, 2]),
                pkt(3, 0, true, &[0x62, 0x01, 0x40, 3]),
            ],
        );
        assert_eq!(nals(&aus[0]), vec![vec![0x00, 0x01, 2, 3]]);
        assert!(aus[0].damaged);
        // Missing end at the marker.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, true, &[0x62, 0x01, 0x81, 1]),
                pkt(2, 9, true, &[0x02, 0x01]),
            ],
        );
        assert!(aus[0].damaged && aus[0].nals.is_empty());
        assert!(!aus[1].damaged);
        // Start and end together, a fragmented FU, a 2-byte FU.
        for bad in [
            &[0x62, 0x01, 0xc1, 1][..],
            &[0x62, 0x01, 0x80 | 49, 1],
            &[0x62, 0x01],
        ] {
            let mut d = Depacketizer::new(None);
            assert!(run(&mut d, &[pkt(1, 0, true, bad)])[0].damaged, "{bad:x?}");
        }
        // A type change mid-NAL.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x62, 0x01, 0x81, 1]),
                pkt(2, 0, true, &[0x62, 0x01, 0x42, 2]),
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
                pkt(1, 0, false, &[0x26, 0x01, 1]),
                pkt(2, 0, false, &[0x26, 0x01, 2]),
                pkt(3, 3000, false, &[0x02, 0x01, 3]),
                pkt(4, 6000, false, &[0x02, 0x01, 4]),
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
            &[
                pkt(1, 0, false, &[0x26, 0x01, 1]),
                pkt(3, 0, true, &[0x26, 0x01, 2]),
            ],
        );
        assert!(aus[0].damaged && !aus[0].loss_before);
        // Gap after a marker: the next access unit has loss before it.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(65535, 0, true, &[0x26, 0x01, 1]),
                pkt(2, 3000, true, &[0x02, 0x01, 2]),
            ],
        );
        assert!(!aus[0].damaged && !aus[1].damaged && aus[1].loss_before);
        // Gap with a timestamp change and no marker: the marker may be lost.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x26, 0x01, 1]),
                pkt(3, 3000, true, &[0x02, 0x01, 2]),
            ],
        );
        assert!(aus[0].damaged && aus[1].loss_before && !aus[1].damaged);
        // A lost middle fragment: the NAL unit is dropped, the picture
        // damaged.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x62, 0x01, 0x80 | 19, 1]),
                pkt(3, 0, false, &[0x62, 0x01, 0x40 | 19, 3]),
                pkt(4, 0, true, &[0x26, 0x01, 4]),
            ],
        );
        assert!(aus[0].damaged);
        assert_eq!(nals(&aus[0]), vec![vec![0x26, 0x01, 4]]);
        // Duplicates and late packets are ignored; a big backward jump is a
        // discontinuity.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1000, 0, false, &[0x26, 0x01, 1]),
                pkt(1000, 0, false, &[0x26, 0x01, 1]),
                pkt(995, 0, false, &[0x26, 0x01, 1]),
                pkt(1001, 0, true, &[0x26, 0x01, 2]),
                pkt(10, 3000, true, &[0x02, 0x01, 1]),
            ],
        );
        assert_eq!(aus[0].nals.len(), 2);
        assert!(!aus[0].damaged && aus[1].loss_before);
    }

    #[test]
    fn bad_payload_headers_and_paci() {
        // Forbidden bit, TID 0, one byte, PACI: damaged, the rest kept.
        for bad in [
            &[0x82, 0x01, 1][..],
            &[0x02, 0x00, 1],
            &[0x02],
            &[0x64, 0x01, 0, 0, 0x02, 0x01],
        ] {
            let mut d = Depacketizer::new(None);
            let aus = run(
                &mut d,
                &[pkt(1, 0, false, bad), pkt(2, 0, true, &[0x02, 0x01, 1])],
            );
            assert!(aus[0].damaged, "{bad:#x?}");
            assert_eq!(nals(&aus[0]), vec![vec![0x02, 0x01, 1]]);
        }
        // Unspecified types 51..=63 and empty payloads are ignored; a
        // marker on an empty payload still ends the access unit.
        let mut d = Depacketizer::new(None);
        let aus = run(
            &mut d,
            &[
                pkt(1, 0, false, &[0x66, 0x01, 1]),
                pkt(2, 0, false, &[0x7e, 0x01, 1]),
                pkt(3, 0, false, &[0x02, 0x01, 1]),
                pkt(4, 0, true, &[]),
            ],
        );
        assert_eq!(aus.len(), 1);
        assert!(!aus[0].damaged);
        assert_eq!(aus[0].nals.len(), 1);
    }

    #[test]
    fn donl_stream_refused() {
        let err = Depacketizer::from_fmtp("profile-id=1;sprop-max-don-diff=3").unwrap_err();
        assert_eq!(err, H265Error::DonlNotSupported(3));
        let d = Depacketizer::from_fmtp("profile-id=1;sprop-max-don-diff=0").unwrap();
        assert!(d.parameter_sets().is_none());
    }

    #[test]
    fn bounded_access_unit() {
        let mut d = Depacketizer::new(None);
        let chunk = vec![0xaa; 60_000];
        let mut first = vec![0x62, 0x01, 0x81];
        first.extend_from_slice(&chunk);
        d.push(&pkt(0, 0, false, &first));
        let mut mid = vec![0x62, 0x01, 0x01];
        mid.extend_from_slice(&chunk);
        let mut seq = 1u16;
        for _ in 0..80 {
            d.push(&pkt(seq, 0, false, &mid));
            d.check_invariants();
            seq += 1;
        }
        let mut single = chunk.clone();
        single[..2].copy_from_slice(&[0x02, 0x01]);
        d.push(&pkt(seq, 0, false, &single));
        d.push(&pkt(seq + 1, 0, true, &[0x62, 0x01, 0x41, 1]));
        d.check_invariants();
        let au = d.pull().unwrap();
        assert!(au.damaged);
        assert!(au.len_bytes() <= MAX_ACCESS_UNIT_BYTES);
        d.push(&pkt(seq + 2, 3000, true, &[0x02, 0x01, 1]));
        assert!(!d.pull().unwrap().damaged);
    }

    proptest::proptest! {
        /// Arbitrary packet scripts (biased to interesting headers) never
        /// panic or break the invariants.
        #[test]
        fn arbitrary_scripts_keep_invariants(script in proptest::collection::vec(
            (
                proptest::prop_oneof![proptest::strategy::Just(1u16), 0u16..4, proptest::arbitrary::any::<u16>()],
                proptest::prop_oneof![proptest::strategy::Just(0u32), proptest::strategy::Just(3000u32), proptest::arbitrary::any::<u32>()],
                proptest::arbitrary::any::<bool>(),
                proptest::prop_oneof![
                    proptest::sample::select(vec![0x02u8, 0x26, 0x2a, 0x40, 0x42, 0x44, 0x60, 0x62, 0x64, 0x82, 0x7e]),
                    proptest::arbitrary::any::<u8>()
                ],
                proptest::prop_oneof![proptest::strategy::Just(1u8), proptest::arbitrary::any::<u8>()],
                proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..12),
            ),
            0..40,
        )) {
            let mut d = Depacketizer::new(None);
            let (mut seq, mut ts) = (0u16, 0u32);
            for (dseq, dts, marker, b0, b1, rest) in script {
                seq = seq.wrapping_add(dseq);
                ts = ts.wrapping_add(dts);
                let mut payload = vec![b0, b1];
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
