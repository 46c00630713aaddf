//! Access units to RTP payloads (RFC 7798, without DONL): single NAL unit
//! packets, fragmentation units, and VPS/SPS/PPS as one aggregation packet
//! before each IRAP picture.
//!
//! Written here for the reasons the H.264 packetizer gives: access units
//! are held as split NAL units (no Annex B scan per picture) and the
//! parameter sets may come from the SDP only.

use bytes::Bytes;

use super::{header, is_irap, nal_type, AccessUnit, NalHeader, ParameterSets};
pub use crate::h264::packetizer::{Payload, DEFAULT_MAX_PAYLOAD};

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

    /// Appends the payloads of `au` to `out`. Before an IRAP picture, VPS,
    /// SPS and PPS are sent as one aggregation packet: the access unit's
    /// own if it carries them, else `params`. AUD NAL units are dropped.
    ///
    /// NAL units up to `max_payload` bytes are sent whole, sharing the
    /// access unit's buffers; larger ones as fragmentation units (one
    /// allocation per NAL unit). The aggregation packet goes where the
    /// access unit's first NAL unit after any AUD was, so the decoding
    /// order is kept. If the parameter sets do not fit one payload they are
    /// sent as separate NAL units instead. NAL units shorter than their
    /// 2-byte header are skipped.
    pub fn packetize(
        &mut self,
        au: &AccessUnit,
        params: Option<&ParameterSets>,
        out: &mut Vec<Payload>,
    ) {
        let first = out.len();
        let kind = |n: &Bytes| header(n).map(|h| h.nal_type);
        let irap = is_irap(au);
        // The parameter sets of an IRAP picture and where they go.
        let mut sets: [Option<Bytes>; 3] = Default::default();
        let mut ps_at = None;
        if irap {
            for (i, n) in au.nals.iter().enumerate() {
                let slot = match kind(n) {
                    Some(nal_type::AUD) | None => continue,
                    Some(nal_type::VPS) => Some(0),
                    Some(nal_type::SPS) => Some(1),
                    Some(nal_type::PPS) => Some(2),
                    Some(_) => None,
                };
                ps_at.get_or_insert(i);
                if let Some(s) = slot {
                    sets[s].get_or_insert_with(|| n.clone());
                }
            }
            if let Some(p) = params {
                for (s, from) in sets.iter_mut().zip([&p.vps, &p.sps, &p.pps]) {
                    if s.is_none() && header(from).is_some() {
                        *s = Some(from.clone());
                    }
                }
            }
        }
        for (i, nal) in au.nals.iter().enumerate() {
            if ps_at == Some(i) {
                self.parameter_sets(&sets, out);
            }
            match kind(nal) {
                None | Some(nal_type::AUD) => {}
                Some(nal_type::VPS | nal_type::SPS | nal_type::PPS) if irap => {
                    // Sent in the aggregation packet, unless a second,
                    // different copy.
                    if !sets.iter().any(|s| s.as_ref() == Some(nal)) {
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

    /// VPS, SPS and PPS as one aggregation packet (RFC 7798 4.4.2), or as
    /// single NAL units if fewer than two or it would not fit.
    fn parameter_sets(&self, sets: &[Option<Bytes>; 3], out: &mut Vec<Payload>) {
        let sets: Vec<&Bytes> = sets.iter().flatten().collect();
        let ap_len = 2 + sets.iter().map(|s| 2 + s.len()).sum::<usize>();
        if sets.len() < 2
            || ap_len > self.max_payload
            || sets.iter().any(|s| s.len() > usize::from(u16::MAX))
        {
            for s in sets {
                self.nal(s, out);
            }
            return;
        }
        // F is the OR of the aggregated F bits, LayerId and TID their
        // lowest (RFC 7798 4.4.2).
        let headers: Vec<NalHeader> = sets.iter().filter_map(|s| header(s)).collect();
        let ph = NalHeader {
            forbidden: headers.iter().any(|h| h.forbidden),
            nal_type: nal_type::AP,
            layer_id: headers.iter().map(|h| h.layer_id).min().unwrap_or(0),
            tid_plus1: headers.iter().map(|h| h.tid_plus1).min().unwrap_or(1),
        };
        let mut ap = Vec::with_capacity(ap_len);
        ap.extend_from_slice(&ph.to_bytes());
        for s in sets {
            ap.extend_from_slice(&(s.len() as u16).to_be_bytes());
            ap.extend_from_slice(s);
        }
        out.push(Payload {
            data: Bytes::from(ap),
            marker: false,
        });
    }

    /// One NAL unit, whole or as fragmentation units (RFC 7798 4.4.3).
    fn nal(&self, nal: &Bytes, out: &mut Vec<Payload>) {
        let Some(h) = header(nal) else { return };
        if nal.len() <= self.max_payload {
            out.push(Payload {
                data: nal.clone(),
                marker: false,
            });
            return;
        }
        let ph = NalHeader {
            nal_type: nal_type::FU,
            ..h
        }
        .to_bytes();
        let body = &nal[2..];
        let chunk = self.max_payload - 3;
        let n = body.len().div_ceil(chunk);
        let mut buf = bytes::BytesMut::with_capacity(body.len() + 3 * n);
        for (i, piece) in body.chunks(chunk).enumerate() {
            let mut fu = h.nal_type;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == n {
                fu |= 0x40;
            }
            buf.extend_from_slice(&ph);
            buf.extend_from_slice(&[fu]);
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
    use crate::h265::tests::{clip, clip_params, without_params};
    use crate::h265::Depacketizer;
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
            vps: b(&[0x40, 0x01, 0x0c]),
            sps: b(&[0x42, 0x01, 0x01, 0x01]),
            pps: b(&[0x44, 0x01, 0xc1]),
        }
    }

    /// RTP packets carrying `payloads` from sequence number `seq`.
    pub(crate) fn packets(payloads: &[Payload], timestamp: u32, seq: &mut u16) -> Vec<RtpPacket> {
        payloads
            .iter()
            .map(|pl| {
                let mut raw = Vec::new();
                RtpPacket::write(&mut raw, pl.marker, 96, *seq, timestamp, 1, &pl.data);
                *seq = seq.wrapping_add(1);
                RtpPacket::parse(Bytes::from(raw)).expect("written packet parses")
            })
            .collect()
    }

    /// Packetizes, then depacketizes.
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
        for pkt in packets(&payloads, au.timestamp, seq) {
            d.push(&pkt);
            d.check_invariants();
        }
        let out = d.pull().expect("one access unit");
        assert!(d.pull().is_none());
        out
    }

    #[test]
    fn irap_with_params_from_argument() {
        let mut p = Packetizer::new(1200);
        let mut out = Vec::new();
        p.packetize(
            &au(&[&[0x46, 0x01, 0x50], &[0x26, 0x01, 1, 2]]),
            Some(&params()),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Payload {
                    data: b(&[
                        0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c, 0, 4, 0x42, 0x01, 0x01, 0x01, 0, 3,
                        0x44, 0x01, 0xc1
                    ]),
                    marker: false
                },
                Payload {
                    data: b(&[0x26, 0x01, 1, 2]),
                    marker: true
                },
            ]
        );
        // Not an IRAP: no parameter sets.
        out.clear();
        p.packetize(&au(&[&[0x02, 0x01, 9]]), Some(&params()), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn fragmentation_units() {
        let mut p = Packetizer::new(10);
        assert_eq!(p.max_payload(), 100);
        let mut nal = vec![0x02, 0x01];
        nal.extend((0..250u32).map(|i| i as u8));
        let mut out = Vec::new();
        p.packetize(&au(&[&nal]), None, &mut out);
        // 250 body bytes in chunks of 97.
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0].data[..4], &[0x62, 0x01, 0x81, 0]);
        assert_eq!(&out[1].data[..4], &[0x62, 0x01, 0x01, 97]);
        assert_eq!(&out[2].data[..4], &[0x62, 0x01, 0x41, 194]);
        assert_eq!(out[2].data.len(), 3 + 250 - 194);
        assert!(out[2].marker && !out[0].marker);
    }

    #[test]
    fn clip_round_trip_and_sdp_only_camera() {
        let aus = clip("b.h265");
        let params = clip_params(&aus);
        let mut p = Packetizer::new(DEFAULT_MAX_PAYLOAD);
        let mut seq = 65000;
        for a in &aus {
            let got = round_trip(&mut p, a, None, &mut seq);
            assert_eq!(got.nals, a.nals);
            // A camera that keeps its parameter sets in the SDP: IRAPs get
            // them in an aggregation packet.
            let bare = without_params(a);
            let got = round_trip(&mut p, &bare, Some(&params), &mut seq);
            if is_irap(a) {
                assert_eq!(
                    &got.nals[..3],
                    &[params.vps.clone(), params.sps.clone(), params.pps.clone()]
                );
                assert_eq!(&got.nals[3..], &bare.nals[..]);
            } else {
                assert_eq!(got.nals, bare.nals);
            }
        }
    }

    /// What the depacketizer should return for `au`: AUDs gone, and for an
    /// IRAP the parameter sets (the AU's own, else `params`) where its
    /// first NAL unit after the AUDs was.
    fn expected(au: &AccessUnit, params: &ParameterSets) -> Vec<Bytes> {
        let kind = |n: &Bytes| header(n).map(|h| h.nal_type);
        let is_ps = |n: &Bytes| matches!(kind(n), Some(32..=34));
        let irap = is_irap(au);
        let own = |t| au.nals.iter().find(|n| kind(n) == Some(t)).cloned();
        let at = au
            .nals
            .iter()
            .position(|n| !matches!(kind(n), Some(nal_type::AUD) | None));
        let mut out: Vec<Bytes> = Vec::new();
        for (i, n) in au.nals.iter().enumerate() {
            if irap && at == Some(i) {
                out.push(own(nal_type::VPS).unwrap_or_else(|| params.vps.clone()));
                out.push(own(nal_type::SPS).unwrap_or_else(|| params.sps.clone()));
                out.push(own(nal_type::PPS).unwrap_or_else(|| params.pps.clone()));
            }
            let dropped = matches!(kind(n), Some(nal_type::AUD) | None);
            let in_ap = irap && is_ps(n);
            if !dropped && !in_ap {
                out.push(n.clone());
            }
        }
        out
    }

    fn nal_strategy() -> impl Strategy<Value = Bytes> {
        // Types weighted to the interesting ones; lengths around the MTU.
        let kind = prop_oneof![Just(1u8), Just(19), Just(21), Just(39), Just(35), Just(0)];
        (
            kind,
            1u8..8,
            prop_oneof![0usize..20, 1000usize..1300, 1300usize..5000],
        )
            .prop_map(|(t, tid, len)| {
                let mut v = NalHeader {
                    forbidden: false,
                    nal_type: t,
                    layer_id: 0,
                    tid_plus1: tid,
                }
                .to_bytes()
                .to_vec();
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
                nals.insert(0, b(&[0x40, 0x01, 7]));
                nals.insert(1, b(&[0x42, 0x01, 1, 2, 3]));
                nals.insert(2, b(&[0x44, 0x01, 4]));
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
