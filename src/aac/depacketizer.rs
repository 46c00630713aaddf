//! RTP to AAC access units: `mpeg4-generic` (RFC 3640 section 3.2: the
//! AU-headers section, several access units per packet, one access unit
//! fragmented over packets) and `MP4A-LATM` (RFC 6416 section 6:
//! audioMuxElements with PayloadLengthInfo, several sub-frames or elements
//! per packet, an element fragmented over packets, the StreamMuxConfig in
//! band when `cpresent=1`).
//!
//! The hub hands audio on as RTP payloads with their timestamp and marker
//! bit, after the jitter buffer; a lost packet shows here as a fragment
//! that does not add up (RFC 3640's AU-size, LATM's PayloadLengthInfo) or
//! a timestamp that changes before the last fragment, and the partial
//! access unit is dropped, never handed to the decoder.
//!
//! Tolerated camera quirks, each on purpose:
//! - a LATM element complete by its own lengths ends without the marker
//!   bit (some cameras never set it);
//! - empty payloads are ignored.
//!
//! Interleaving (RFC 3640 section 3.2.3.2, AU-Index-delta > 0) is honoured
//! in the timestamps handed out, not by reordering: no camera is known to
//! interleave, and the transcoder treats a step back in time as a new
//! start.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::bits::Bits;
use super::config::{AacFormat, AuHeaderLayout, AudioSpecificConfig, Framing, StreamMuxConfig};

/// Largest access unit, or fragmented LATM payload, kept (bytes). An AAC
/// raw data block holds at most 6144 bits per channel; this leaves room
/// for 8 channels and several LATM sub-frames, and bounds what a camera
/// that never ends a fragment can make us hold.
pub const MAX_AU_BYTES: usize = 64 * 1024;

/// Most access units waiting to be pulled; beyond it the oldest go (a
/// caller that never pulls must not grow memory).
const MAX_READY: usize = 256;

/// One AAC access unit (a raw_data_block), as a decoder takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The coded audio; shares the packet's buffer when not reassembled.
    pub data: Bytes,
    /// RTP timestamp of its first sample, at the stream's clock rate.
    pub timestamp: u32,
}

/// What the depacketizer did, for counters and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Access units handed out.
    pub access_units: u64,
    /// Partial access units dropped (a fragment lost or cut short).
    pub partial_dropped: u64,
    /// Packets, or parts of them, that were not valid framing.
    pub malformed: u64,
    /// LATM elements dropped because no StreamMuxConfig was known yet.
    pub without_config: u64,
    /// Access units dropped because too many waited to be pulled.
    pub overflow: u64,
}

/// A fragmented access unit (RFC 3640) or LATM payload being reassembled.
#[derive(Debug)]
struct Fragment {
    /// RTP timestamp shared by its packets.
    timestamp: u32,
    /// RFC 3640: the AU-size every fragment's header announces, when the
    /// layout has one.
    size: Option<usize>,
    /// The bytes so far.
    data: BytesMut,
}

/// Turns the RTP payloads of one AAC stream, in sequence order, into access
/// units. Call [`Depacketizer::push`] for each packet, then drain
/// [`Depacketizer::pull`]; call [`Depacketizer::lost`] when packets were
/// known to be lost.
#[derive(Debug)]
pub struct Depacketizer {
    /// The SDP's description (framing, clock rate).
    format: AacFormat,
    /// The decoder config in force (from the SDP, or in band for LATM).
    config: Option<AudioSpecificConfig>,
    /// LATM: the StreamMuxConfig in force.
    mux: Option<StreamMuxConfig>,
    /// Fragment being reassembled.
    frag: Option<Fragment>,
    /// Access units ready, oldest first.
    ready: VecDeque<AccessUnit>,
    /// Counters.
    stats: DepacketizerStats,
}

/// Why LATM bytes did not parse.
enum LatmProblem {
    /// The bytes end inside an element: wait for the next fragment.
    Incomplete,
    /// Not valid LATM.
    Malformed,
}

impl Depacketizer {
    /// A depacketizer for a stream of `format`.
    pub fn new(format: AacFormat) -> Self {
        let mux = match &format.framing {
            Framing::Latm { config, .. } => config.clone(),
            Framing::Generic(_) => None,
        };
        Depacketizer {
            config: format.config.clone(),
            mux,
            format,
            frag: None,
            ready: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// The decoder config in force; it may change in band (LATM), so
    /// check it before decoding what [`Depacketizer::pull`] returns.
    pub fn config(&self) -> Option<&AudioSpecificConfig> {
        self.config.as_ref()
    }

    /// The RTP clock rate of the stream, Hz.
    pub fn clock_rate(&self) -> u32 {
        self.format.clock_rate
    }

    /// The counters so far.
    pub fn stats(&self) -> &DepacketizerStats {
        &self.stats
    }

    /// The next access unit, oldest first.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Packets were lost (or the caller skipped some): a fragment in
    /// progress cannot be completed.
    pub fn lost(&mut self) {
        if self.frag.take().is_some() {
            self.stats.partial_dropped += 1;
        }
    }

    /// Takes the next packet's payload, RTP timestamp and marker bit.
    pub fn push(&mut self, payload: &Bytes, timestamp: u32, marker: bool) {
        if self.frag.as_ref().is_some_and(|f| f.timestamp != timestamp) {
            // The last fragment of the previous access unit never came.
            self.lost();
        }
        if payload.is_empty() {
            return;
        }
        match self.format.framing.clone() {
            Framing::Generic(layout) => self.push_generic(&layout, payload, timestamp, marker),
            Framing::Latm { cpresent, .. } => self.push_latm(cpresent, payload, timestamp, marker),
        }
    }

    fn emit(&mut self, data: Bytes, timestamp: u32) {
        if data.is_empty() {
            return;
        }
        if self.ready.len() >= MAX_READY {
            self.ready.pop_front();
            self.stats.overflow += 1;
        }
        self.stats.access_units += 1;
        self.ready.push_back(AccessUnit { data, timestamp });
    }

    fn au_ticks(&self) -> u32 {
        match &self.config {
            Some(c) => self.format.au_ticks(c),
            None => 1024,
        }
    }

    /// RFC 3640 section 3.2.
    fn push_generic(&mut self, layout: &AuHeaderLayout, payload: &Bytes, ts: u32, marker: bool) {
        let Some((sizes, data)) = split_generic(layout, payload) else {
            self.stats.malformed += 1;
            self.lost();
            return;
        };
        if let Some(mut frag) = self.frag.take() {
            // A continuation: the same one AU-header, the next bytes.
            let size = sizes.first().map(|(s, _)| *s);
            if sizes.len() > 1 || size != frag.size {
                self.stats.malformed += 1;
                self.stats.partial_dropped += 1;
                return;
            }
            frag.data.extend_from_slice(&data);
            return self.fragment_step(frag, marker);
        }
        if sizes.is_empty() {
            // No AU-size: the packet holds one access unit, or a fragment
            // of one that the marker bit ends.
            return self.fragment_step(
                Fragment {
                    timestamp: ts,
                    size: None,
                    data: BytesMut::from(&data[..]),
                },
                marker,
            );
        }
        let ticks = self.au_ticks();
        let first_index = sizes[0].1;
        let mut offset = 0usize;
        for (i, &(size, index)) in sizes.iter().enumerate() {
            let au_ts = ts.wrapping_add(index.wrapping_sub(first_index).wrapping_mul(ticks));
            if offset + size <= data.len() {
                self.emit(data.slice(offset..offset + size), au_ts);
                offset += size;
            } else if sizes.len() == 1 && size <= MAX_AU_BYTES {
                // The first fragment of a larger access unit.
                return self.fragment_step(
                    Fragment {
                        timestamp: ts,
                        size: Some(size),
                        data: BytesMut::from(&data[..]),
                    },
                    marker,
                );
            } else {
                // The sizes announce more than the packet holds.
                self.stats.malformed += 1;
                tracing::trace!(
                    au = i,
                    size,
                    left = data.len() - offset,
                    "AU-size past the payload"
                );
                return;
            }
        }
    }

    /// A fragment grew: hand it out when complete, keep it while it may
    /// still be, drop it when it cannot be.
    fn fragment_step(&mut self, frag: Fragment, marker: bool) {
        let len = frag.data.len();
        match frag.size {
            Some(size) if len == size => self.emit(frag.data.freeze(), frag.timestamp),
            Some(size) if len > size || marker => {
                self.stats.partial_dropped += 1;
                if len > size {
                    self.stats.malformed += 1;
                }
            }
            None if marker => self.emit(frag.data.freeze(), frag.timestamp),
            _ if len > MAX_AU_BYTES => {
                self.stats.partial_dropped += 1;
            }
            _ => self.frag = Some(frag),
        }
    }

    /// RFC 6416 section 6.
    fn push_latm(&mut self, cpresent: bool, payload: &Bytes, ts: u32, marker: bool) {
        let (data, timestamp) = match self.frag.take() {
            Some(mut f) => {
                f.data.extend_from_slice(payload);
                (f.data.freeze(), f.timestamp)
            }
            None => (payload.clone(), ts),
        };
        let mut aus = Vec::new();
        match self.parse_latm(cpresent, &data, &mut aus) {
            Ok(()) => {
                let ticks = self.au_ticks();
                for (i, au) in aus.into_iter().enumerate() {
                    self.emit(au, timestamp.wrapping_add((i as u32).wrapping_mul(ticks)));
                }
            }
            Err(LatmProblem::Incomplete) if !marker && data.len() <= MAX_AU_BYTES => {
                self.frag = Some(Fragment {
                    timestamp,
                    size: None,
                    data: BytesMut::from(&data[..]),
                });
            }
            Err(LatmProblem::Incomplete) => {
                self.stats.partial_dropped += 1;
            }
            Err(LatmProblem::Malformed) => {
                self.stats.malformed += 1;
            }
        }
    }

    /// Parses whole audioMuxElements filling `data` exactly (RFC 6416
    /// section 6.1, 14496-3 1.7.3 with muxConfigPresent = `cpresent`).
    fn parse_latm(
        &mut self,
        cpresent: bool,
        data: &Bytes,
        aus: &mut Vec<Bytes>,
    ) -> Result<(), LatmProblem> {
        let mut b = Bits::new(data);
        while b.left() >= 8 {
            if cpresent {
                let same = b.bool().ok_or(LatmProblem::Incomplete)?;
                if !same {
                    let mux = StreamMuxConfig::read(&mut b).map_err(|e| match e {
                        super::AacError::Truncated => LatmProblem::Incomplete,
                        _ => LatmProblem::Malformed,
                    })?;
                    if self.mux.as_ref() != Some(&mux) {
                        self.config = Some(mux.asc.clone());
                        self.mux = Some(mux);
                    }
                }
            }
            let Some(mux) = self.mux.as_ref() else {
                // Nothing to read the element with: count it, keep nothing.
                self.stats.without_config += 1;
                aus.clear();
                return Ok(());
            };
            let (sub_frames, other) = (mux.sub_frames, mux.other_data_bits);
            for _ in 0..=sub_frames {
                let mut len = 0usize;
                loop {
                    let v = b.read(8).ok_or(LatmProblem::Incomplete)?;
                    len += v as usize;
                    if v != 255 {
                        break;
                    }
                }
                if len > MAX_AU_BYTES {
                    return Err(LatmProblem::Malformed);
                }
                if b.left() < len * 8 {
                    return Err(LatmProblem::Incomplete);
                }
                if b.aligned() {
                    let at = b.byte_position();
                    aus.push(data.slice(at..at + len));
                    b.skip(len * 8).ok_or(LatmProblem::Incomplete)?;
                } else {
                    let at = b.position();
                    aus.push(Bytes::from(
                        b.copy(at, len * 8).ok_or(LatmProblem::Incomplete)?,
                    ));
                    b.skip(len * 8).ok_or(LatmProblem::Incomplete)?;
                }
            }
            b.skip(other as usize).ok_or(LatmProblem::Incomplete)?;
            b.align();
        }
        if b.left() > 0 {
            return Err(LatmProblem::Malformed);
        }
        Ok(())
    }

    /// Checks the internal invariants (fuzz targets and tests call this
    /// after every step).
    pub fn check_invariants(&self) {
        if let Some(f) = &self.frag {
            assert!(f.data.len() <= MAX_AU_BYTES, "a fragment past the cap");
            if let Some(size) = f.size {
                assert!(f.data.len() < size, "a complete fragment kept");
            }
        }
        assert!(self.ready.len() <= MAX_READY);
        for au in &self.ready {
            assert!(!au.data.is_empty(), "an empty access unit");
            assert!(au.data.len() <= MAX_AU_BYTES);
        }
        if let Framing::Latm { .. } = self.format.framing {
            assert_eq!(
                self.config.as_ref(),
                self.mux.as_ref().map(|m| &m.asc),
                "the LATM config and the decoder config disagree"
            );
        }
    }
}

/// Splits an RFC 3640 payload into its AU-headers (size and index of each)
/// and the data after the headers and auxiliary sections; `None` when the
/// sections do not fit the payload.
fn split_generic(layout: &AuHeaderLayout, payload: &Bytes) -> Option<(Vec<(usize, u32)>, Bytes)> {
    let mut offset = 0usize;
    let mut sizes = Vec::new();
    if layout.has_headers() {
        let header_bits = usize::from(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        let header_bytes = header_bits.div_ceil(8);
        let section = payload.get(2..2 + header_bytes)?;
        let mut b = Bits::new(section);
        let mut index = 0u32;
        while b.position() < header_bits {
            let size = b.read(u32::from(layout.size))? as usize;
            if sizes.is_empty() {
                index = b.read(u32::from(layout.index))?;
            } else {
                let delta = b.read(u32::from(layout.index_delta))?;
                index = index.wrapping_add(delta).wrapping_add(1);
            }
            for len in [layout.cts_delta, layout.dts_delta] {
                if len > 0 && b.bool()? {
                    b.skip(usize::from(len))?;
                }
            }
            if layout.random_access {
                b.skip(1)?;
            }
            b.skip(usize::from(layout.stream_state))?;
            if b.position() > header_bits {
                return None;
            }
            sizes.push((size, index));
            if layout.size == 0 {
                // Without AU-size only one access unit can be told apart.
                break;
            }
        }
        offset = 2 + header_bytes;
    }
    if layout.auxiliary_size > 0 {
        let mut b = Bits::new(payload.get(offset..)?);
        let aux_bits = b.read(u32::from(layout.auxiliary_size))? as usize;
        b.skip(aux_bits)?;
        b.align();
        offset += b.byte_position();
    }
    if layout.size == 0 {
        sizes.clear();
    }
    Some((sizes, payload.slice(offset.min(payload.len())..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic() -> Depacketizer {
        Depacketizer::new(
            AacFormat::from_sdp(
                "MPEG4-GENERIC",
                48_000,
                Some("mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188"),
            )
            .unwrap(),
        )
    }

    /// An AAC-hbr payload holding `aus` whole.
    fn hbr(aus: &[&[u8]]) -> Bytes {
        let mut p = Vec::new();
        p.extend_from_slice(&((aus.len() * 16) as u16).to_be_bytes());
        for au in aus {
            p.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
        }
        for au in aus {
            p.extend_from_slice(au);
        }
        Bytes::from(p)
    }

    /// An AAC-hbr fragment: the whole AU's header, then `part`.
    fn hbr_fragment(size: usize, part: &[u8]) -> Bytes {
        let mut p = vec![0, 16];
        p.extend_from_slice(&((size as u16) << 3).to_be_bytes());
        p.extend_from_slice(part);
        Bytes::from(p)
    }

    fn drain(d: &mut Depacketizer) -> Vec<AccessUnit> {
        let mut out = Vec::new();
        while let Some(au) = d.pull() {
            d.check_invariants();
            out.push(au);
        }
        out
    }

    #[test]
    fn several_access_units_per_packet_get_their_own_timestamps() {
        let mut d = generic();
        d.push(&hbr(&[b"abc", b"de", b"f"]), 1000, true);
        d.check_invariants();
        let aus = drain(&mut d);
        assert_eq!(
            aus.iter()
                .map(|a| (&a.data[..], a.timestamp))
                .collect::<Vec<_>>(),
            [(&b"abc"[..], 1000), (&b"de"[..], 2024), (&b"f"[..], 3048)]
        );
    }

    #[test]
    fn a_fragmented_access_unit_is_reassembled_and_a_broken_one_dropped() {
        let mut d = generic();
        d.push(&hbr_fragment(7, b"abc"), 5000, false);
        d.push(&hbr_fragment(7, b"de"), 5000, false);
        assert!(d.pull().is_none());
        d.push(&hbr_fragment(7, b"fg"), 5000, true);
        assert_eq!(drain(&mut d)[0].data, &b"abcdefg"[..]);
        // The middle fragment lost: the sizes do not add up at the marker.
        d.push(&hbr_fragment(7, b"abc"), 6024, false);
        d.push(&hbr_fragment(7, b"fg"), 6024, true);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().partial_dropped, 1);
        // The last fragment lost: the next timestamp drops the partial one.
        d.push(&hbr_fragment(7, b"abc"), 7048, false);
        d.push(&hbr(&[b"xy"]), 8072, true);
        let aus = drain(&mut d);
        assert_eq!((aus.len(), &aus[0].data[..]), (1, &b"xy"[..]));
        assert_eq!(d.stats().partial_dropped, 2);
        // A known loss drops it too, and the last fragment alone is one
        // more partial access unit.
        d.push(&hbr_fragment(7, b"abc"), 9096, false);
        d.lost();
        assert_eq!(d.stats().partial_dropped, 3);
        d.push(&hbr_fragment(7, b"defg"), 9096, true);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().partial_dropped, 4);
        d.check_invariants();
    }

    #[test]
    fn garbage_is_counted_not_decoded() {
        let mut d = generic();
        // Headers longer than the packet.
        d.push(&Bytes::from_static(&[0x01, 0x00, 0x00]), 0, true);
        // Two headers announcing more than the packet holds.
        d.push(
            &Bytes::from_static(&[0x00, 0x20, 0x00, 0x28, 0x00, 0x28, 1, 2, 3, 4]),
            0,
            true,
        );
        // A fragment's continuation with a different size.
        d.push(&hbr_fragment(7, b"abc"), 10, false);
        d.push(&hbr_fragment(9, b"defg"), 10, true);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().malformed, 3);
        d.push(&Bytes::new(), 11, true);
        d.check_invariants();
    }

    #[test]
    fn auxiliary_data_and_optional_fields_are_skipped() {
        let layout = AuHeaderLayout {
            size: 13,
            index: 3,
            index_delta: 3,
            cts_delta: 2,
            random_access: true,
            auxiliary_size: 8,
            ..Default::default()
        };
        // One header of 20 bits: AU-size 2 (13 bits), AU-Index 0 (3),
        // CTS-flag 1 and a 2-bit CTS-delta, RAP-flag 1; padded to 24 bits.
        let v: u32 = ((2 << 7) | 0b1101) << 4;
        let mut p = vec![0, 20, (v >> 16) as u8, (v >> 8) as u8, v as u8];
        // Auxiliary section: an 8-bit size of 4, 4 bits of data, aligned.
        p.extend_from_slice(&[4, 0xf0]);
        p.extend_from_slice(b"hi");
        let (sizes, data) = split_generic(&layout, &Bytes::from(p)).unwrap();
        assert_eq!(sizes, [(2, 0)]);
        assert_eq!(&data[..], b"hi");
    }

    /// Replays GStreamer's RTP packets of `rtp` (made with `fmtp`) and
    /// checks that the access units are those of the ADTS twin, timed one
    /// access unit apart (give or take GStreamer's rounding of nanoseconds
    /// to RTP ticks: steps of 1023 to 1025).
    fn replay(encoding: &str, fmtp: &str, rtp: &[u8]) -> DepacketizerStats {
        let (_, expected) = crate::aac::testdata::adts(include_bytes!(
            "../../tests/fixtures/aac/sine1k_48k_mono.aac"
        ));
        let packets = crate::aac::testdata::rfc4571(rtp);
        assert!(packets.len() > expected.len(), "mtu 120 fragments");
        let mut d = Depacketizer::new(AacFormat::from_sdp(encoding, 48_000, Some(fmtp)).unwrap());
        let mut aus = Vec::new();
        for p in &packets {
            d.push(&p.payload(), p.timestamp, p.marker);
            d.check_invariants();
            aus.extend(drain(&mut d));
        }
        assert_eq!(aus.len(), expected.len());
        for (i, (au, data)) in aus.iter().zip(&expected).enumerate() {
            assert_eq!(&au.data, data, "access unit {i}");
            let step = au.timestamp.wrapping_sub(aus[0].timestamp) as i32;
            assert!(
                (step - i as i32 * 1024).abs() <= 2,
                "access unit {i}: {step}"
            );
        }
        d.stats().clone()
    }

    #[test]
    fn replays_gstreamer_rfc3640_packets() {
        let s = replay(
            "MPEG4-GENERIC",
            "streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1188;sizelength=13;indexlength=3;indexdeltalength=3",
            include_bytes!("../../tests/fixtures/aac/mp4g_48k_mono.rtp"),
        );
        assert_eq!((s.partial_dropped, s.malformed), (0, 0));
    }

    #[test]
    fn replays_gstreamer_latm_packets() {
        let s = replay(
            "MP4A-LATM",
            "cpresent=0;config=40002310",
            include_bytes!("../../tests/fixtures/aac/mp4a_48k_mono.rtp"),
        );
        assert_eq!((s.partial_dropped, s.malformed), (0, 0));
    }

    #[test]
    fn lost_fragments_never_reach_the_decoder() {
        let (_, expected) = crate::aac::testdata::adts(include_bytes!(
            "../../tests/fixtures/aac/sine1k_48k_mono.aac"
        ));
        for (encoding, fmtp, rtp) in [
            (
                "MPEG4-GENERIC",
                "mode=AAC-hbr;config=1188",
                &include_bytes!("../../tests/fixtures/aac/mp4g_48k_mono.rtp")[..],
            ),
            (
                "MP4A-LATM",
                "cpresent=0;config=40002310",
                &include_bytes!("../../tests/fixtures/aac/mp4a_48k_mono.rtp")[..],
            ),
        ] {
            let mut d =
                Depacketizer::new(AacFormat::from_sdp(encoding, 48_000, Some(fmtp)).unwrap());
            // Every seventh packet lost.
            for (n, p) in crate::aac::testdata::rfc4571(rtp).iter().enumerate() {
                if n % 7 != 3 {
                    d.push(&p.payload(), p.timestamp, p.marker);
                }
                d.check_invariants();
            }
            let aus = drain(&mut d);
            assert!(aus.len() > expected.len() / 2, "{encoding}: {}", aus.len());
            assert!(aus.len() < expected.len(), "{encoding}: {}", aus.len());
            // Whatever came out is a whole access unit of the stream.
            for au in &aus {
                assert!(
                    expected.contains(&au.data),
                    "{encoding}: a broken access unit"
                );
            }
            assert!(d.stats().partial_dropped > 0, "{encoding}");
        }
    }

    fn latm(cpresent: bool, config: Option<&str>) -> Depacketizer {
        let fmtp = match config {
            Some(c) => format!("cpresent={};config={c}", u8::from(cpresent)),
            None => format!("cpresent={}", u8::from(cpresent)),
        };
        Depacketizer::new(AacFormat::from_sdp("MP4A-LATM", 48_000, Some(&fmtp)).unwrap())
    }

    #[test]
    fn latm_elements_sub_frames_and_fragments() {
        let mut d = latm(false, Some("40002310"));
        // Two elements in one packet, the second one 300 bytes long.
        let mut p = vec![3, b'a', b'b', b'c', 255, 45];
        p.extend(std::iter::repeat_n(7u8, 300));
        d.push(&Bytes::from(p.clone()), 100, true);
        let aus = drain(&mut d);
        assert_eq!(aus.len(), 2);
        assert_eq!((&aus[0].data[..], aus[0].timestamp), (&b"abc"[..], 100));
        assert_eq!((aus[1].data.len(), aus[1].timestamp), (300, 1124));
        // The same, fragmented in three, the marker on the last.
        d.push(&Bytes::copy_from_slice(&p[..5]), 2000, false);
        d.push(&Bytes::copy_from_slice(&p[5..100]), 2000, false);
        assert!(d.pull().is_none());
        d.push(&Bytes::copy_from_slice(&p[100..]), 2000, true);
        assert_eq!(drain(&mut d).len(), 2);
        // The middle fragment lost: the marker arrives on too few bytes.
        d.push(&Bytes::copy_from_slice(&p[..5]), 3000, false);
        d.push(&Bytes::copy_from_slice(&p[100..]), 3000, true);
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().partial_dropped, 1);
        // A complete element without the marker bit is still complete.
        d.push(&Bytes::from_static(&[2, 1, 2]), 4000, false);
        assert_eq!(drain(&mut d).len(), 1);
        // Bytes past a complete element that are not an element.
        d.push(&Bytes::from_static(&[2, 1, 2, 9]), 5000, true);
        assert!(drain(&mut d).is_empty());
        d.check_invariants();
    }

    #[test]
    fn latm_config_in_band() {
        let mut d = latm(true, None);
        // useSameStreamMux=1 with no config known yet: nothing to read.
        d.push(&Bytes::from_static(&[0x80, 0x80]), 0, true);
        assert!(d.pull().is_none());
        assert_eq!(d.stats().without_config, 1);
        assert!(d.config().is_none());
        // useSameStreamMux=0, the config 400023103fc0 shifted by one bit,
        // then a 2-byte payload, not aligned.
        let mut bits = String::from("0");
        for byte in [0x40u8, 0x00, 0x23, 0x10, 0x3f, 0xc0] {
            bits.push_str(&format!("{byte:08b}"));
        }
        // The config is 44 bits: cut it there, then length 2 and "hi".
        bits.truncate(1 + 44);
        for byte in [2u8, b'h', b'i'] {
            bits.push_str(&format!("{byte:08b}"));
        }
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = (0..bits.len())
            .step_by(8)
            .map(|i| u8::from_str_radix(&bits[i..i + 8], 2).unwrap())
            .collect();
        d.push(&Bytes::from(bytes), 10, true);
        let aus = drain(&mut d);
        assert_eq!(aus.len(), 1, "{:?}", d.stats());
        assert_eq!(&aus[0].data[..], b"hi");
        assert_eq!(d.config().unwrap().sample_rate, 48_000);
        d.check_invariants();
    }
}
