//! Repair gate for H.265 access units received over RTP (RFC 7798): keeps
//! undecodable pictures away from consumers, asks for keyframes, drops RASL
//! pictures that cannot decode, and puts VPS/SPS/PPS in front of IRAP
//! pictures that lack them. Sans-IO.
//!
//! The decisions are the H.264 gate's ([`crate::h264::repair`]), with the
//! same policy, outputs, drop reasons and counters, so a camera pipeline
//! handles both codecs alike; the keyframes are IRAP pictures instead of
//! IDRs. One rule is H.265's own: when forwarding (re)starts at a CRA, or
//! passes a BLA, the RASL pictures that follow refer to pictures before it
//! that consumers never got, so they are dropped as
//! [`DropReason::WaitingForKeyframe`] (H.265 8.1.3: a decoder starting
//! there would not output them either).
//!
//! Call [`RepairGate::process`] once per access unit, in order, with the
//! [`Analysis`] that [`super::analyzer::Analyzer::analyze`] returned for it.

use bytes::Bytes;

use super::analyzer::{Analysis, Damage};
use super::{header, nal_type, AccessUnit, ParameterSets};
pub use crate::h264::repair::{DropReason, GateOutput, GateState, GateStats, OnDamage};

/// Decides per access unit whether consumers get it, and repairs IRAP
/// pictures that lack parameter sets. Holds no clock: the caller
/// rate-limits refresh requests.
pub struct RepairGate {
    /// The configured policy.
    policy: OnDamage,
    /// Dropping until an IRAP (only under [`OnDamage::DropUntilKeyframe`]).
    state: GateState,
    /// Damage seen since the last clean IRAP: the picture is broken until
    /// the next one, whatever the policy. Also keeps `request_refresh` to
    /// once per episode.
    awaiting_keyframe: bool,
    /// Latest VPS, SPS and PPS seen in band in intact access units, else
    /// the SDP's.
    params: [Option<Bytes>; 3],
    /// The last forwarded IRAP restarted decoding at a CRA, or was a BLA:
    /// RASL pictures are dropped until the next IRAP.
    skip_rasl: bool,
    /// A timestamp jump not yet reported on a forwarded access unit.
    pending_discontinuity: bool,
    /// Some access unit was dropped since the last forwarded one.
    dropped_since_forward: bool,
    /// RTP timestamp of the last forwarded access unit.
    last_forwarded: Option<u32>,
    /// Counters; `sps_pps_inserted` counts IRAPs given VPS/SPS/PPS.
    stats: GateStats,
    /// RASL pictures dropped (also counted as waiting for a keyframe).
    rasl_dropped: u64,
}

/// Where each parameter set type goes in an access unit: AUD first, then
/// VPS, SPS, PPS, then everything else (H.265 7.4.2.4.4).
fn rank(nal: &Bytes) -> u8 {
    match header(nal).map(|h| h.nal_type) {
        Some(nal_type::AUD) => 0,
        Some(nal_type::VPS) => 1,
        Some(nal_type::SPS) => 2,
        Some(nal_type::PPS) => 3,
        _ => 4,
    }
}

impl RepairGate {
    /// Creates a gate. `sdp_params` (from `sprop-vps/sps/pps`) are inserted
    /// before IRAP pictures until the camera sends its own in band.
    pub fn new(policy: OnDamage, sdp_params: Option<ParameterSets>) -> Self {
        let params = match sdp_params {
            Some(p) => [p.vps, p.sps, p.pps].map(|n| Some(n).filter(|n| !n.is_empty())),
            None => Default::default(),
        };
        RepairGate {
            policy,
            state: match policy {
                OnDamage::DropUntilKeyframe => GateState::WaitingForKeyframe,
                OnDamage::Forward => GateState::Passing,
            },
            awaiting_keyframe: false,
            params,
            skip_rasl: false,
            pending_discontinuity: false,
            dropped_since_forward: false,
            last_forwarded: None,
            stats: GateStats::default(),
            rasl_dropped: 0,
        }
    }

    /// Decides on the next access unit. Call once per access unit, in the
    /// order received, with its analysis from the same stream's analyzer.
    pub fn process(&mut self, mut au: AccessUnit, analysis: &Analysis) -> GateOutput {
        let broken = analysis.breaks_decoding();
        let intact = !analysis.has(Damage::PacketLoss) && !analysis.has(Damage::BadNalHeader);
        if intact {
            self.learn_params(&au);
        }
        if analysis.has(Damage::TimestampJump) {
            self.pending_discontinuity = true;
        }

        if analysis.rasl && self.skip_rasl {
            // Refers to pictures before the CRA that consumers never got;
            // no other picture refers to it, so it is no damage episode.
            // Leading pictures have earlier timestamps than their IRAP:
            // dropping one does not make the next forwarded one go back.
            self.stats.dropped_waiting_for_keyframe += 1;
            self.rasl_dropped += 1;
            return GateOutput {
                forward: None,
                dropped: Some(DropReason::WaitingForKeyframe),
                request_refresh: false,
                discontinuity: false,
            };
        }

        let waiting = self.state == GateState::WaitingForKeyframe;
        let dropped = match self.policy {
            OnDamage::Forward => None,
            OnDamage::DropUntilKeyframe if waiting && !analysis.irap => {
                Some(DropReason::WaitingForKeyframe)
            }
            OnDamage::DropUntilKeyframe if broken => Some(DropReason::Damaged),
            OnDamage::DropUntilKeyframe => None,
        };

        // Waiting at start is not a damage episode.
        let start_wait = waiting && !self.awaiting_keyframe;
        let mut request_refresh = false;
        if broken && (analysis.irap || !start_wait) {
            request_refresh = !self.awaiting_keyframe;
            self.awaiting_keyframe = true;
        } else if !broken && analysis.irap {
            self.awaiting_keyframe = false;
        }

        let mut out = GateOutput {
            forward: None,
            dropped,
            request_refresh,
            discontinuity: false,
        };
        self.stats.refresh_requested += u64::from(request_refresh);
        match dropped {
            Some(reason) => {
                if self.policy == OnDamage::DropUntilKeyframe {
                    self.state = GateState::WaitingForKeyframe;
                }
                self.dropped_since_forward = true;
                match reason {
                    DropReason::Damaged => self.stats.dropped_damaged += 1,
                    DropReason::WaitingForKeyframe => self.stats.dropped_waiting_for_keyframe += 1,
                }
            }
            None => {
                if analysis.irap && self.policy == OnDamage::DropUntilKeyframe {
                    let bla = matches!(
                        analysis.nal_type,
                        Some(nal_type::BLA_W_LP..=nal_type::BLA_N_LP)
                    );
                    self.skip_rasl = analysis.may_have_rasl() && (waiting || bla);
                }
                if self.policy == OnDamage::DropUntilKeyframe {
                    self.state = GateState::Passing;
                }
                let backwards = self.dropped_since_forward
                    && self
                        .last_forwarded
                        .is_some_and(|prev| (au.timestamp.wrapping_sub(prev) as i32) < 0);
                out.discontinuity = self.pending_discontinuity || backwards;
                self.pending_discontinuity = false;
                self.dropped_since_forward = false;
                self.last_forwarded = Some(au.timestamp);
                if analysis.irap && self.insert_params(&mut au) {
                    self.stats.sps_pps_inserted += 1;
                }
                self.stats.forwarded += 1;
                self.stats.discontinuities += u64::from(out.discontinuity);
                out.forward = Some(au);
            }
        }
        out
    }

    /// [`GateState::WaitingForKeyframe`] while dropping; always
    /// [`GateState::Passing`] under [`OnDamage::Forward`].
    pub fn state(&self) -> GateState {
        self.state
    }

    /// True from a damaged picture until the next clean IRAP, under either
    /// policy: the caller keeps asking for a keyframe while this holds.
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// Counters since creation.
    pub fn stats(&self) -> &GateStats {
        &self.stats
    }

    /// RASL pictures dropped since creation (part of
    /// `stats().dropped_waiting_for_keyframe`).
    pub fn rasl_dropped(&self) -> u64 {
        self.rasl_dropped
    }

    /// Panics if the counters disagree with each other. For tests and fuzz
    /// targets.
    pub fn check_invariants(&self) {
        let s = &self.stats;
        assert!(s.sps_pps_inserted <= s.forwarded, "{s:?}");
        assert!(s.discontinuities <= s.forwarded, "{s:?}");
        assert!(self.rasl_dropped <= s.dropped_waiting_for_keyframe, "{s:?}");
        assert!(
            s.refresh_requested <= s.forwarded + s.dropped_damaged + s.dropped_waiting_for_keyframe,
            "{s:?}"
        );
        if self.policy == OnDamage::Forward {
            assert_eq!(self.state, GateState::Passing);
            assert_eq!(s.dropped_damaged + s.dropped_waiting_for_keyframe, 0);
            assert!(!self.skip_rasl);
        }
    }

    /// Remembers the latest in-band VPS, SPS and PPS.
    fn learn_params(&mut self, au: &AccessUnit) {
        for nal in &au.nals {
            if let r @ 1..=3 = rank(nal) {
                self.params[usize::from(r - 1)] = Some(nal.clone());
            }
        }
    }

    /// Inserts the missing VPS, SPS and/or PPS, each before the first NAL
    /// unit that must follow it (after an AUD, before SEI and slices). True
    /// if anything was inserted.
    fn insert_params(&self, au: &mut AccessUnit) -> bool {
        let mut inserted = false;
        for (slot, param) in self.params.iter().enumerate() {
            let r = slot as u8 + 1;
            let Some(param) = param else { continue };
            if au.nals.iter().any(|n| rank(n) == r) {
                continue;
            }
            let at = au
                .nals
                .iter()
                .position(|n| rank(n) > r)
                .unwrap_or(au.nals.len());
            au.nals.insert(at, param.clone());
            inserted = true;
        }
        inserted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h265::analyzer::Analyzer;
    use crate::h265::tests::{clip, clip_params, without_params, STEP};

    /// Runs access units through a fresh analyzer and the gate.
    struct Pipeline {
        analyzer: Analyzer,
        gate: RepairGate,
    }

    impl Pipeline {
        fn new(policy: OnDamage, sdp: Option<ParameterSets>) -> Self {
            Pipeline {
                analyzer: Analyzer::new(sdp.as_ref()),
                gate: RepairGate::new(policy, sdp),
            }
        }

        fn push(&mut self, au: &AccessUnit) -> GateOutput {
            let a = self.analyzer.analyze(au);
            let out = self.gate.process(au.clone(), &a);
            assert!(out.forward.is_some() != out.dropped.is_some(), "{out:?}");
            assert!(!out.discontinuity || out.forward.is_some());
            self.gate.check_invariants();
            out
        }
    }

    fn types(au: &AccessUnit) -> Vec<u8> {
        au.nals
            .iter()
            .map(|n| header(n).expect("whole headers").nal_type)
            .collect()
    }

    #[test]
    fn waits_for_first_keyframe_without_refresh() {
        let aus = clip("p.h265");
        let mut p = Pipeline::new(OnDamage::default(), None);
        assert_eq!(p.gate.state(), GateState::WaitingForKeyframe);
        // Joining mid-GOP: the pictures before the CRA at 25 are dropped
        // (they also lack parameter sets, which asks for nothing).
        for au in &aus[3..25] {
            let out = p.push(au);
            assert_eq!(out.dropped, Some(DropReason::WaitingForKeyframe));
            assert!(!out.request_refresh);
        }
        let out = p.push(&aus[25]);
        assert!(out.forward.is_some() && !out.request_refresh);
        assert_eq!(p.gate.state(), GateState::Passing);
        for au in &aus[26..] {
            assert!(p.push(au).forward.is_some());
        }
        let s = p.gate.stats();
        assert_eq!((s.forwarded, s.dropped_waiting_for_keyframe), (25, 22));
        assert_eq!(s.refresh_requested, 0);
    }

    #[test]
    fn damage_drops_until_the_next_clean_irap() {
        let aus = clip("p.h265");
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[..10] {
            assert!(p.push(au).forward.is_some());
        }
        let mut lost = aus[10].clone();
        lost.damaged = true;
        let out = p.push(&lost);
        assert_eq!(out.dropped, Some(DropReason::Damaged));
        assert!(out.request_refresh && p.gate.awaiting_keyframe());
        for au in &aus[11..25] {
            let out = p.push(au);
            assert_eq!(out.dropped, Some(DropReason::WaitingForKeyframe));
            assert!(!out.request_refresh, "once per episode");
        }
        // A keyframe missing its last segments is no way out.
        let mut cut = aus[25].clone();
        cut.nals.truncate(cut.nals.len() - 2);
        let out = p.push(&cut);
        assert_eq!(out.dropped, Some(DropReason::Damaged));
        assert!(p.gate.awaiting_keyframe());
        // Forward policy: everything passes, refresh still asked.
        let mut f = Pipeline::new(OnDamage::Forward, None);
        for au in &aus[..10] {
            f.push(au);
        }
        let out = f.push(&lost);
        assert!(out.forward.is_some() && out.request_refresh);
        // The next clean IRAP ends the episode.
        let mut p2 = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in aus[..10].iter().chain([&lost]).chain(&aus[11..]) {
            p2.push(au);
        }
        assert!(!p2.gate.awaiting_keyframe());
        assert_eq!(p2.gate.stats().forwarded, 10 + 25);
        assert_eq!(p2.gate.stats().refresh_requested, 1);
    }

    #[test]
    fn rasl_pictures_dropped_after_starting_at_a_cra() {
        let aus = clip("b.h265");
        let cra = aus
            .iter()
            .position(|a| types(a).contains(&nal_type::CRA))
            .unwrap();
        let is_rasl = |a: &AccessUnit| types(a).iter().any(|&t| t == 8 || t == 9);
        let rasl = aus[cra..].iter().filter(|a| is_rasl(a)).count();
        assert!(rasl > 0);

        // Joining at the CRA: its RASL pictures go, the rest passes.
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[cra..] {
            let out = p.push(au);
            if is_rasl(au) {
                assert_eq!(out.dropped, Some(DropReason::WaitingForKeyframe));
                assert!(!out.request_refresh);
            } else {
                assert!(out.forward.is_some(), "{:?}", types(au));
                assert!(!out.discontinuity);
            }
        }
        assert_eq!(p.gate.rasl_dropped(), rasl as u64);
        assert!(!p.gate.awaiting_keyframe());

        // Decoding from the IDR: the CRA is passed through, its RASL
        // pictures decode and are forwarded.
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus {
            assert!(p.push(au).forward.is_some());
        }
        assert_eq!(p.gate.rasl_dropped(), 0);

        // Recovering from damage at the CRA drops them too.
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for (i, au) in aus.iter().enumerate() {
            let mut au = au.clone();
            au.damaged = i == 3;
            p.push(&au);
        }
        assert_eq!(p.gate.rasl_dropped(), rasl as u64);

        // The Forward policy forwards them.
        let mut p = Pipeline::new(OnDamage::Forward, None);
        for au in &aus[cra..] {
            assert!(p.push(au).forward.is_some());
        }
    }

    #[test]
    fn parameter_sets_inserted_before_irap() {
        let aus = clip("p.h265");
        let params = clip_params(&aus);
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, Some(params.clone()));
        for (i, au) in aus.iter().enumerate() {
            let bare = without_params(au);
            let out = p.push(&bare).forward.expect("clean clip");
            if i == 0 || i == 25 {
                let t = types(&out);
                assert_eq!(
                    &t[..4],
                    &[
                        nal_type::VPS,
                        nal_type::SPS,
                        nal_type::PPS,
                        nal_type::PREFIX_SEI
                    ]
                );
                assert_eq!(
                    &out.nals[..3],
                    &[params.vps.clone(), params.sps.clone(), params.pps.clone()]
                );
                assert_eq!(&out.nals[3..], &bare.nals[..]);
            } else {
                assert_eq!(out, bare);
            }
        }
        assert_eq!(p.gate.stats().sps_pps_inserted, 2);

        // An IRAP carrying its own is left alone; one carrying only a PPS
        // gets VPS and SPS before it.
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, Some(params.clone()));
        assert_eq!(p.push(&aus[0]).forward.unwrap(), aus[0]);
        let mut only_pps = aus[25].clone();
        only_pps.nals.drain(..2);
        let out = p.push(&only_pps).forward.unwrap();
        assert_eq!(
            types(&out)[..4],
            [
                nal_type::VPS,
                nal_type::SPS,
                nal_type::PPS,
                nal_type::PREFIX_SEI
            ]
        );
        assert_eq!(p.gate.stats().sps_pps_inserted, 1);

        // Without SDP parameter sets, in-band ones are learned for later.
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        p.push(&aus[0]);
        let out = p.push(&without_params(&aus[25]));
        // The analyzer knows the parameter sets from the first IRAP.
        assert_eq!(
            types(&out.forward.unwrap())[..3],
            [nal_type::VPS, nal_type::SPS, nal_type::PPS]
        );
    }

    /// The case end to end over RTP: the packets of a keyframe's
    /// last two slice segments (and with them the marker) never arrive,
    /// and the sequence numbers show no gap. The keyframe is caught,
    /// dropped, and a refresh asked for.
    #[test]
    fn keyframe_cut_short_over_rtp_without_sequence_gap() {
        use crate::h265::{Depacketizer, Packetizer};
        use crate::rtp::RtpPacket;
        let aus = clip("p.h265");
        let mut packetizer = Packetizer::new(1200);
        let mut d = Depacketizer::new(None);
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        let mut seq = 40_000u16;
        let mut outs = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            let mut payloads = Vec::new();
            packetizer.packetize(au, None, &mut payloads);
            if i == 25 {
                let mut tail = Vec::new();
                let last_two = AccessUnit {
                    nals: au.nals[au.nals.len() - 2..].to_vec(),
                    ..au.clone()
                };
                packetizer.packetize(&last_two, None, &mut tail);
                payloads.truncate(payloads.len() - tail.len());
                assert!(payloads.iter().all(|x| !x.marker));
            }
            for pl in payloads {
                let mut raw = Vec::new();
                RtpPacket::write(&mut raw, pl.marker, 96, seq, au.timestamp, 1, &pl.data);
                seq = seq.wrapping_add(1);
                d.push(&RtpPacket::parse(Bytes::from(raw)).expect("written packet parses"));
                while let Some(got) = d.pull() {
                    assert!(!got.damaged && !got.loss_before, "no gap, no loss seen");
                    let a = p.analyzer.analyze(&got);
                    outs.push((a.clone(), p.gate.process(got, &a)));
                }
            }
        }
        assert_eq!(outs.len(), 50);
        let (a, out) = &outs[25];
        assert!(a.irap);
        assert_eq!(a.slices, 2);
        assert_eq!(a.damage, vec![Damage::MissingSlices]);
        assert_eq!(out.dropped, Some(DropReason::Damaged));
        assert!(out.request_refresh);
        assert!(outs[..25]
            .iter()
            .all(|(a, o)| a.damage.is_empty() && o.forward.is_some()));
        assert!(outs[26..].iter().all(|(_, o)| o.dropped.is_some()));
    }

    #[test]
    fn timestamp_jump_reported_on_next_forwarded() {
        let aus = clip("p.h265");
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[..5] {
            p.push(au);
        }
        let mut jump = aus[5].clone();
        jump.timestamp = 100 * STEP + MAX_STEP;
        let out = p.push(&jump);
        assert!(out.forward.is_some() && out.discontinuity);
        assert!(
            !p.push(&AccessUnit {
                timestamp: jump.timestamp + STEP,
                ..aus[6].clone()
            })
            .discontinuity
        );
    }

    const MAX_STEP: u32 = crate::h265::analyzer::MAX_TIMESTAMP_STEP;

    #[test]
    fn arbitrary_access_units_never_panic() {
        let aus = clip("b.h265");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for policy in [OnDamage::DropUntilKeyframe, OnDamage::Forward] {
            let mut p = Pipeline::new(policy, Some(clip_params(&aus)));
            for au in &aus {
                let mut au = au.clone();
                match next() % 5 {
                    0 => au.damaged = true,
                    1 => au.loss_before = true,
                    2 => au.nals.truncate((next() as usize) % (au.nals.len() + 1)),
                    3 => au.timestamp = next() as u32,
                    _ => {}
                }
                let before = types(&au);
                if let Some(out) = p.push(&au).forward {
                    let after = types(&out);
                    for t in [nal_type::VPS, nal_type::SPS, nal_type::PPS] {
                        let n = after.iter().filter(|&&x| x == t).count();
                        assert!(n <= before.iter().filter(|&&x| x == t).count().max(1));
                    }
                }
            }
        }
    }
}
