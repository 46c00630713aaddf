//! Access units to RTP payloads (RFC 6184, packetization-mode=1): single NAL
//! units, FU-A fragments, and SPS/PPS as a STAP-A before each IDR.
//!
//! Written here rather than with webrtc-rs's `H264Payloader`: that one takes
//! an Annex B buffer and scans it for start codes on every picture, and
//! sends SPS/PPS only when they came in band; camgate already holds each
//! access unit as split NAL units and takes the parameter sets from the SDP
//! too (cameras that send them only there).

use super::{nal_type, AccessUnit, ParameterSets};
use bytes::Bytes;

/// Default largest RTP payload: fits a 1500-byte MTU with IP/UDP/RTP and
/// SRTP/TURN overhead.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// One RTP payload produced for an access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// RTP payload bytes (NAL unit, FU-A fragment or STAP-A).
    pub data: Bytes,
    /// Set on the last payload of the access unit.
    pub marker: bool,
}

/// Packetizes access units into payloads no larger than `max_payload`.
#[derive(Debug, Clone)]
pub struct Packetizer {
    /// Largest payload produced, in bytes (at least 100).
    max_payload: usize,
}

impl Packetizer {
    /// `max_payload` is clamped to at least 100 bytes.
    pub fn new(max_payload: usize) -> Self {
        Packetizer {
            max_payload: max_payload.max(100),
        }
    }

    /// The largest payload this packetizer produces.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads of `au` to `out`. Before an IDR, SPS and PPS are
    /// sent as one STAP-A: the access unit's own if it carries them, else
    /// `params`. AUD NAL units are dropped.
    ///
    /// NAL units up to `max_payload` bytes are sent whole, sharing the
    /// access unit's buffers; larger ones as FU-A fragments (one allocation
    /// per NAL unit). The STAP-A takes the place of the access unit's first
    /// SPS/PPS, or else goes just before its first IDR slice, so the
    /// decoding order is kept. If SPS+PPS do not fit one payload they are
    /// sent as separate NAL units instead. Empty NAL units are skipped.
    pub fn packetize(
        &mut self,
        au: &AccessUnit,
        params: Option<&ParameterSets>,
        out: &mut Vec<Payload>,
    ) {
        let kind = |n: &Bytes| n.first().map(|b| b & 0x1f);
        let first = out.len();
        let is_idr = au.is_idr();
        // Where the parameter sets go and what they are, for an IDR.
        let mut ps_at = None;
        let mut sps = None;
        let mut pps = None;
        if is_idr {
            for (i, n) in au.nals.iter().enumerate() {
                match kind(n) {
                    Some(nal_type::SPS) if sps.is_none() => {
                        sps = Some(n.clone());
                        ps_at.get_or_insert(i);
                    }
                    Some(nal_type::PPS) if pps.is_none() => {
                        pps = Some(n.clone());
                        ps_at.get_or_insert(i);
                    }
                    Some(nal_type::IDR) => {
                        ps_at.get_or_insert(i);
                    }
                    _ => {}
                }
            }
            if let Some(p) = params {
                sps = sps.or_else(|| Some(p.sps.clone()).filter(|s| !s.is_empty()));
                pps = pps.or_else(|| Some(p.pps.clone()).filter(|s| !s.is_empty()));
            }
        }
        for (i, nal) in au.nals.iter().enumerate() {
            if ps_at == Some(i) {
                self.parameter_sets(sps.as_ref(), pps.as_ref(), out);
            }
            match kind(nal) {
                None | Some(nal_type::AUD) => {}
                Some(nal_type::SPS | nal_type::PPS) if is_idr => {
                    // Sent in the STAP-A, unless this is a second, different copy.
                    if Some(nal) != sps.as_ref() && Some(nal) != pps.as_ref() {
                        self.nal(nal, out);
                    }
                }
                Some(_) => self.nal(nal, out),
            }
        }
        if let Some(last) = out[first..].last_mut() {
            last.marker = true;
        }
    }

    /// SPS and PPS as one STAP-A, or as single NAL units if it would not fit.
    fn parameter_sets(&self, sps: Option<&Bytes>, pps: Option<&Bytes>, out: &mut Vec<Payload>) {
        let sets: Vec<&Bytes> = sps.into_iter().chain(pps).collect();
        let stap_len = 1 + sets.iter().map(|s| 2 + s.len()).sum::<usize>();
        if sets.len() < 2
            || stap_len > self.max_payload
            || sets.iter().any(|s| s.len() > usize::from(u16::MAX))
        {
            for s in sets {
                self.nal(s, out);
            }
            return;
        }
        let mut stap = Vec::with_capacity(stap_len);
        // F is the OR of the aggregated F bits, NRI their maximum (RFC 6184 5.7.1).
        let f = sets.iter().fold(0, |a, s| a | (s[0] & 0x80));
        let nri = sets.iter().map(|s| s[0] & 0x60).max().unwrap_or(0x60);
        stap.push(f | nri | nal_type::STAP_A);
        for s in sets {
            stap.extend_from_slice(&(s.len() as u16).to_be_bytes());
            stap.extend_from_slice(s);
        }
        out.push(Payload {
            data: Bytes::from(stap),
            marker: false,
        });
    }

    /// One NAL unit, whole or as FU-A fragments.
    fn nal(&self, nal: &Bytes, out: &mut Vec<Payload>) {
        if nal.len() <= self.max_payload {
            out.push(Payload {
                data: nal.clone(),
                marker: false,
            });
            return;
        }
        let header = nal[0];
        let indicator = (header & 0xe0) | nal_type::FU_A;
        let body = &nal[1..];
        let chunk = self.max_payload - 2;
        let n = body.len().div_ceil(chunk);
        let mut buf = bytes::BytesMut::with_capacity(body.len() + 2 * n);
        for (i, piece) in body.chunks(chunk).enumerate() {
            let mut fu = header & 0x1f;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == n {
                fu |= 0x40;
            }
            buf.extend_from_slice(&[indicator, fu]);
            buf.extend_from_slice(piece);
            out.push(Payload {
                data: buf.split().freeze(),
                marker: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::Depacketizer;
    use crate::rtp::RtpPacket;
    use proptest::prelude::*;

    fn b(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }

    fn au(nals: &[&[u8]]) -> AccessUnit {
        AccessUnit {
            timestamp: 0,
            nals: nals.iter().map(|n| b(n)).collect(),
            damaged: false,
            loss_before: false,
        }
    }

    fn params() -> ParameterSets {
        ParameterSets {
            sps: b(&[0x67, 0x42, 0xc0, 0x1e]),
            pps: b(&[0x68, 0xce]),
        }
    }

    /// Packetizes, then depacketizes with RTP sequence numbers from `seq`.
    fn round_trip(
        p: &mut Packetizer,
        au: &AccessUnit,
        params: Option<&ParameterSets>,
        seq: &mut u16,
    ) -> AccessUnit {
        let mut payloads = Vec::new();
        p.packetize(au, params, &mut payloads);
        assert!(payloads.iter().all(|x| x.data.len() <= p.max_payload()));
        assert_eq!(payloads.iter().filter(|x| x.marker).count(), 1);
        assert!(payloads.last().unwrap().marker);
        let mut d = Depacketizer::new(None);
        for pl in &payloads {
            let mut raw = Vec::new();
            RtpPacket::write(&mut raw, pl.marker, 96, *seq, au.timestamp, 1, &pl.data);
            *seq = seq.wrapping_add(1);
            d.push(&RtpPacket::parse(Bytes::from(raw)).unwrap());
            d.check_invariants();
        }
        let out = d.pull().expect("one access unit");
        assert!(d.pull().is_none());
        out
    }

    #[test]
    fn idr_with_params_from_argument() {
        let mut p = Packetizer::new(1200);
        let mut out = Vec::new();
        p.packetize(
            &au(&[&[0x09, 0xf0], &[0x65, 1, 2]]),
            Some(&params()),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Payload {
                    data: b(&[0x78, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 0, 2, 0x68, 0xce]),
                    marker: false
                },
                Payload {
                    data: b(&[0x65, 1, 2]),
                    marker: true
                },
            ]
        );
    }

    #[test]
    fn idr_with_own_params_not_sent_twice() {
        let mut p = Packetizer::new(1200);
        let mut out = Vec::new();
        p.packetize(
            &au(&[&[0x67, 9], &[0x68, 8], &[0x06, 5], &[0x65, 1]]),
            Some(&params()),
            &mut out,
        );
        let data: Vec<&[u8]> = out.iter().map(|x| &x.data[..]).collect();
        assert_eq!(
            data,
            vec![
                &[0x78, 0, 2, 0x67, 9, 0, 2, 0x68, 8][..],
                &[0x06, 5],
                &[0x65, 1]
            ]
        );
        // Non-IDR: parameter sets pass through as they are, no STAP-A.
        out.clear();
        p.packetize(&au(&[&[0x68, 8], &[0x41, 1]]), Some(&params()), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].data[..], &[0x68, 8]);
    }

    #[test]
    fn fu_a_fragments() {
        let mut p = Packetizer::new(10); // clamped to 100
        assert_eq!(p.max_payload(), 100);
        let mut nal = vec![0x41];
        nal.extend((0..250u32).map(|i| i as u8));
        let mut out = Vec::new();
        p.packetize(&au(&[&nal]), None, &mut out);
        // 250 body bytes in chunks of 98.
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0].data[..3], &[0x5c, 0x81, 0]);
        assert_eq!(&out[1].data[..3], &[0x5c, 0x01, 98]);
        assert_eq!(&out[2].data[..3], &[0x5c, 0x41, 196]);
        assert_eq!(out[2].data.len(), 2 + 250 - 196);
        assert!(out[2].marker && !out[0].marker);
    }

    #[test]
    fn idr_without_any_params() {
        let mut p = Packetizer::new(1200);
        let mut out = Vec::new();
        p.packetize(&au(&[&[0x65, 1]]), None, &mut out);
        assert_eq!(
            out,
            vec![Payload {
                data: b(&[0x65, 1]),
                marker: true
            }]
        );
    }

    /// What the depacketizer should return for `au`: AUDs gone, and for an
    /// IDR the parameter sets (the AU's own, else `params`) in place of the
    /// first SPS/PPS or just before the first IDR slice.
    fn expected(au: &AccessUnit, params: &ParameterSets) -> Vec<Bytes> {
        let kind = |n: &Bytes| n[0] & 0x1f;
        let is_ps = |n: &Bytes| kind(n) == nal_type::SPS || kind(n) == nal_type::PPS;
        let idr = au.is_idr();
        let own = |t| au.nals.iter().find(|n| kind(n) == t).cloned();
        let at = au
            .nals
            .iter()
            .position(|n| is_ps(n) || kind(n) == nal_type::IDR);
        let mut out: Vec<Bytes> = Vec::new();
        for (i, n) in au.nals.iter().enumerate() {
            if idr && at == Some(i) {
                out.push(own(nal_type::SPS).unwrap_or_else(|| params.sps.clone()));
                out.push(own(nal_type::PPS).unwrap_or_else(|| params.pps.clone()));
            }
            if kind(n) != nal_type::AUD && !(idr && is_ps(n)) {
                out.push(n.clone());
            }
        }
        out
    }

    fn nal_strategy() -> impl Strategy<Value = Bytes> {
        // Types weighted to the interesting ones; lengths around the MTU.
        let kind = prop_oneof![Just(1u8), Just(5), Just(6), Just(9), Just(2)];
        (
            kind,
            0u8..4,
            prop_oneof![0usize..20, 1000usize..1300, 1300usize..5000],
        )
            .prop_map(|(t, nri, len)| {
                let mut v = vec![(nri << 5) | t];
                v.extend((0..len).map(|i| (i * 7 + 3) as u8));
                Bytes::from(v)
            })
    }

    proptest! {
        #[test]
        fn packetize_depacketize_round_trip(
            nals in proptest::collection::vec(nal_strategy(), 1..8),
            own_params in any::<bool>(),
            max in 100usize..1500,
            seq in any::<u16>(),
        ) {
            let params = params();
            let mut nals = nals;
            if own_params {
                nals.insert(0, b(&[0x67, 1, 2, 3]));
                nals.insert(1, b(&[0x68, 4]));
            }
            let au = AccessUnit { timestamp: 90_000, nals, damaged: false, loss_before: false };
            let want = expected(&au, &params);
            prop_assume!(!want.is_empty());
            let mut p = Packetizer::new(max);
            let mut seq = seq;
            let got = round_trip(&mut p, &au, Some(&params), &mut seq);
            prop_assert!(!got.damaged && !got.loss_before);
            prop_assert_eq!(got.timestamp, 90_000);
            prop_assert_eq!(got.nals, want);
        }
    }
}
