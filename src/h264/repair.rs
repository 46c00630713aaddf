//! Repair gate for H.264 access units received over RTP (RFC 6184): keeps
//! undecodable pictures away from consumers, asks for keyframes, and puts
//! SPS/PPS in front of keyframes that lack them. Sans-IO.
//!
//! Call [`RepairGate::process`] once per access unit, in order, with the
//! [`Analysis`] that [`super::analyzer::Analyzer::analyze`] returned for it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::analyzer::{Analysis, Damage};
use super::{nal_type, AccessUnit, ParameterSets};

/// What to do with a picture that arrived damaged (packets lost, cut short
/// or out of order beyond repair) until the next keyframe: `on_damage` in
/// `cameras.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDamage {
    /// `"drop-until-keyframe"` (default): drop the damaged picture and every
    /// picture after it until a clean keyframe (and ask the camera for one),
    /// so consumers see a short freeze, never smeared video. Also waits for
    /// a keyframe at start.
    #[default]
    DropUntilKeyframe,
    /// `"forward"`: forward everything as received, damaged or not; no
    /// freeze, but decoders show smeared or grey areas until the next
    /// keyframe. Still asks for a keyframe on damage.
    Forward,
}

impl OnDamage {
    /// The spelling used in `cameras.toml`: `drop-until-keyframe` or
    /// `forward`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDamage::DropUntilKeyframe => "drop-until-keyframe",
            OnDamage::Forward => "forward",
        }
    }
}

impl std::fmt::Display for OnDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the gate forwards pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateState {
    /// Dropping non-IDR pictures until a clean IDR arrives.
    WaitingForKeyframe,
    /// Forwarding pictures.
    Passing,
}

impl GateState {
    /// snake_case name for status pages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::WaitingForKeyframe => "waiting_for_keyframe",
            GateState::Passing => "passing",
        }
    }
}

/// Why an access unit was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The picture itself is damaged ([`Analysis::breaks_decoding`]).
    Damaged,
    /// The picture looks clean but refers to pictures that were dropped (or
    /// never received, at start): only an IDR restarts decoding.
    WaitingForKeyframe,
}

impl DropReason {
    /// The snake_case name used as the metrics label `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Damaged => "damaged",
            DropReason::WaitingForKeyframe => "waiting_for_keyframe",
        }
    }
}

/// The gate's decision on one access unit. Exactly one of `forward` and
/// `dropped` is `Some`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateOutput {
    /// The access unit to hand to consumers, with SPS/PPS inserted if it is
    /// an IDR that lacked them.
    pub forward: Option<AccessUnit>,
    /// Why the access unit was dropped.
    pub dropped: Option<DropReason>,
    /// Ask the camera for a keyframe (RTCP PLI/FIR). Set once per damage
    /// episode; the caller rate-limits and re-asks on its own timer while
    /// [`RepairGate::awaiting_keyframe`] is true.
    pub request_refresh: bool,
    /// The timestamps of `forward` do not continue the previous forwarded
    /// picture's timeline: consumers must re-anchor. Only set together with
    /// `forward`; a jump on a dropped picture is reported on the next
    /// forwarded one.
    pub discontinuity: bool,
}

/// Counters kept by the [`RepairGate`] since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Access units forwarded.
    pub forwarded: u64,
    /// Access units dropped as [`DropReason::Damaged`].
    pub dropped_damaged: u64,
    /// Access units dropped as [`DropReason::WaitingForKeyframe`].
    pub dropped_waiting_for_keyframe: u64,
    /// IDR access units into which SPS and/or PPS were inserted.
    pub sps_pps_inserted: u64,
    /// Outputs with `request_refresh` set.
    pub refresh_requested: u64,
    /// Outputs with `discontinuity` set.
    pub discontinuities: u64,
}

impl GateStats {
    /// Access units dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Damaged => self.dropped_damaged,
            DropReason::WaitingForKeyframe => self.dropped_waiting_for_keyframe,
        }
    }
}

/// Decides per access unit whether consumers get it, and repairs keyframes
/// that lack parameter sets. Holds no clock: the caller rate-limits refresh
/// requests.
pub struct RepairGate {
    /// The configured policy.
    policy: OnDamage,
    /// Dropping until an IDR (only under [`OnDamage::DropUntilKeyframe`]).
    state: GateState,
    /// Damage seen since the last clean IDR: the picture is broken until the
    /// next one, whatever the policy. Also keeps `request_refresh` to once
    /// per episode.
    awaiting_keyframe: bool,
    /// Latest SPS seen in band in an intact access unit, else the SDP's.
    sps: Option<Bytes>,
    /// Latest PPS seen in band in an intact access unit, else the SDP's.
    pps: Option<Bytes>,
    /// A timestamp jump not yet reported on a forwarded access unit.
    pending_discontinuity: bool,
    /// Some access unit was dropped since the last forwarded one.
    dropped_since_forward: bool,
    /// RTP timestamp of the last forwarded access unit.
    last_forwarded: Option<u32>,
    /// Counters.
    stats: GateStats,
}

impl RepairGate {
    /// Creates a gate. `sdp_params` (from `sprop-parameter-sets`) are
    /// inserted before IDRs until the camera sends its own in band.
    pub fn new(policy: OnDamage, sdp_params: Option<ParameterSets>) -> Self {
        let (sps, pps) = match sdp_params {
            Some(p) => (
                Some(p.sps).filter(|n| !n.is_empty()),
                Some(p.pps).filter(|n| !n.is_empty()),
            ),
            None => (None, None),
        };
        RepairGate {
            policy,
            state: match policy {
                OnDamage::DropUntilKeyframe => GateState::WaitingForKeyframe,
                OnDamage::Forward => GateState::Passing,
            },
            awaiting_keyframe: false,
            sps,
            pps,
            pending_discontinuity: false,
            dropped_since_forward: false,
            last_forwarded: None,
            stats: GateStats::default(),
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

        let waiting = self.state == GateState::WaitingForKeyframe;
        let dropped = match self.policy {
            OnDamage::Forward => None,
            // Dropped anyway: damage in it changes nothing (and asks nothing
            // at start, when the wait is not caused by damage).
            OnDamage::DropUntilKeyframe if waiting && !analysis.idr => {
                Some(DropReason::WaitingForKeyframe)
            }
            OnDamage::DropUntilKeyframe if broken => Some(DropReason::Damaged),
            OnDamage::DropUntilKeyframe => None,
        };

        // Waiting at start is not a damage episode: a broken P picture then
        // asks for nothing, the keyframe will come on its own.
        let start_wait = waiting && !self.awaiting_keyframe;
        let mut request_refresh = false;
        if broken && (analysis.idr || !start_wait) {
            request_refresh = !self.awaiting_keyframe;
            self.awaiting_keyframe = true;
        } else if !broken && analysis.idr {
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
                if analysis.idr && self.insert_params(&mut au) {
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

    /// True from a damaged picture until the next clean IDR, under either
    /// policy: the caller keeps asking for a keyframe while this holds.
    pub fn awaiting_keyframe(&self) -> bool {
        self.awaiting_keyframe
    }

    /// Counters since creation.
    pub fn stats(&self) -> &GateStats {
        &self.stats
    }

    /// Panics if the counters disagree with each other. For tests and fuzz
    /// targets.
    pub fn check_invariants(&self) {
        let s = &self.stats;
        assert!(s.sps_pps_inserted <= s.forwarded, "{s:?}");
        assert!(s.discontinuities <= s.forwarded, "{s:?}");
        assert!(
            s.refresh_requested <= s.forwarded + s.dropped_damaged + s.dropped_waiting_for_keyframe,
            "{s:?}"
        );
        if self.policy == OnDamage::Forward {
            assert_eq!(self.state, GateState::Passing);
            assert_eq!(s.dropped_damaged + s.dropped_waiting_for_keyframe, 0);
        }
    }

    /// Remembers the latest in-band SPS and PPS.
    fn learn_params(&mut self, au: &AccessUnit) {
        for nal in &au.nals {
            match nal.first().map(|h| h & 0x1f) {
                Some(nal_type::SPS) => self.sps = Some(nal.clone()),
                Some(nal_type::PPS) => self.pps = Some(nal.clone()),
                _ => {}
            }
        }
    }

    /// Inserts the missing SPS and/or PPS before the first IDR slice (the SPS
    /// before an existing PPS). True if anything was inserted.
    fn insert_params(&self, au: &mut AccessUnit) -> bool {
        let kind = |n: &Bytes| n.first().map(|h| h & 0x1f);
        let has = |t| au.nals.iter().any(|n| kind(n) == Some(t));
        let missing_sps = self.sps.as_ref().filter(|_| !has(nal_type::SPS)).cloned();
        let missing_pps = self.pps.as_ref().filter(|_| !has(nal_type::PPS)).cloned();
        if missing_sps.is_none() && missing_pps.is_none() {
            return false;
        }
        let Some(idr_at) = au.nals.iter().position(|n| kind(n) == Some(nal_type::IDR)) else {
            return false;
        };
        if let Some(pps) = missing_pps {
            au.nals.insert(idr_at, pps);
        }
        if let Some(sps) = missing_sps {
            let at = au
                .nals
                .iter()
                .position(|n| matches!(kind(n), Some(nal_type::PPS | nal_type::IDR)))
                .unwrap_or(idr_at);
            au.nals.insert(at, sps);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::analyzer::tests::{clip, clip_params, slices_only, STEP};
    use crate::h264::analyzer::Analyzer;

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
        au.nals.iter().map(|n| n[0] & 0x1f).collect()
    }

    #[test]
    fn policy_names() {
        assert_eq!(OnDamage::default(), OnDamage::DropUntilKeyframe);
        let p: OnDamage = serde_json::from_str("\"drop-until-keyframe\"").unwrap();
        assert_eq!(p, OnDamage::DropUntilKeyframe);
        let p: OnDamage = serde_json::from_str("\"forward\"").unwrap();
        assert_eq!(p, OnDamage::Forward);
        assert!(serde_json::from_str::<OnDamage>("\"drop\"").is_err());
        assert_eq!(
            serde_json::to_string(&OnDamage::DropUntilKeyframe).unwrap(),
            "\"drop-until-keyframe\""
        );
        assert_eq!(DropReason::Damaged.as_str(), "damaged");
        assert_eq!(
            DropReason::WaitingForKeyframe.as_str(),
            "waiting_for_keyframe"
        );
        assert_eq!(
            GateState::WaitingForKeyframe.as_str(),
            "waiting_for_keyframe"
        );
    }

    #[test]
    fn waits_for_first_keyframe_without_refresh() {
        let aus = clip();
        let mut p = Pipeline::new(OnDamage::default(), None);
        assert_eq!(p.gate.state(), GateState::WaitingForKeyframe);
        // Joining mid-GOP: the P pictures before the next IDR are dropped.
        let second_idr = aus.iter().skip(1).position(|a| a.is_idr()).unwrap() + 1;
        for au in &aus[second_idr - 3..second_idr] {
            let out = p.push(au);
            assert_eq!(out.dropped, Some(DropReason::WaitingForKeyframe));
            assert!(!out.request_refresh);
        }
        let out = p.push(&aus[second_idr]);
        assert_eq!(out.forward.as_ref(), Some(&aus[second_idr]));
        assert!(!out.discontinuity);
        assert_eq!(p.gate.state(), GateState::Passing);
        assert!(p.push(&aus[second_idr + 1]).forward.is_some());
        let s = p.gate.stats();
        assert_eq!(
            (s.forwarded, s.dropped(DropReason::WaitingForKeyframe)),
            (2, 3)
        );
        assert_eq!(s.refresh_requested, 0);
    }

    #[test]
    fn lost_fragment_drops_until_next_keyframe() {
        let aus = clip();
        let second_idr = aus.iter().skip(1).position(|a| a.is_idr()).unwrap() + 1;
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[..10] {
            assert!(p.push(au).forward.is_some());
        }
        // A lost FU-A middle: the depacketizer marks the picture damaged.
        let mut lost = aus[10].clone();
        lost.damaged = true;
        let s = lost.nals[1].clone();
        lost.nals[1] = s.slice(..s.len() / 3);
        let out = p.push(&lost);
        assert_eq!(out.dropped, Some(DropReason::Damaged));
        assert!(out.request_refresh);
        assert!(p.gate.awaiting_keyframe());
        for au in &aus[11..second_idr] {
            let out = p.push(au);
            assert_eq!(out.dropped, Some(DropReason::WaitingForKeyframe));
            assert!(!out.request_refresh, "asked once; the caller re-asks");
        }
        assert_eq!(p.gate.state(), GateState::WaitingForKeyframe);
        let out = p.push(&aus[second_idr]);
        assert!(out.forward.is_some());
        assert!(!out.discontinuity, "timestamps moved forward");
        assert!(!p.gate.awaiting_keyframe());
        assert_eq!(p.gate.state(), GateState::Passing);
        let s = p.gate.stats().clone();
        assert_eq!(s.dropped_damaged, 1);
        assert_eq!(s.dropped_waiting_for_keyframe, (second_idr - 11) as u64);
        assert_eq!(s.refresh_requested, 1);
        assert_eq!(s.forwarded, 11);
        assert_eq!(p.analyzer.stats().damage(Damage::PacketLoss), 1);
    }

    #[test]
    fn damaged_keyframe_keeps_waiting() {
        let aus = clip();
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        let mut idr = aus[0].clone();
        idr.damaged = true;
        let out = p.push(&idr);
        assert_eq!(out.dropped, Some(DropReason::Damaged));
        assert!(out.request_refresh);
        assert_eq!(
            p.push(&aus[1]).dropped,
            Some(DropReason::WaitingForKeyframe)
        );
    }

    #[test]
    fn forward_policy_forwards_damage_and_asks_for_keyframe() {
        let aus = clip();
        let second_idr = aus.iter().skip(1).position(|a| a.is_idr()).unwrap() + 1;
        let mut p = Pipeline::new(OnDamage::Forward, Some(clip_params(&aus)));
        assert_eq!(p.gate.state(), GateState::Passing);
        assert!(p.push(&aus[1]).forward.is_some(), "no wait at start");
        let mut lost = aus[2].clone();
        lost.damaged = true;
        let out = p.push(&lost);
        assert_eq!(out.forward.as_ref(), Some(&lost));
        assert!(out.request_refresh);
        // Skipping a picture: damage again in the same episode.
        let out = p.push(&aus[4]);
        assert!(out.forward.is_some() && !out.request_refresh);
        assert!(p.gate.awaiting_keyframe());
        for au in &aus[5..=second_idr] {
            assert!(p.push(au).forward.is_some());
        }
        assert!(!p.gate.awaiting_keyframe());
        assert_eq!(p.gate.state(), GateState::Passing);
        assert_eq!(p.gate.stats().refresh_requested, 1);
    }

    #[test]
    fn inserts_sdp_parameter_sets_before_idr() {
        let aus = clip();
        let params = clip_params(&aus);
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, Some(params.clone()));
        // A camera that sends SPS/PPS only in the SDP; keep the SEI.
        let mut idr = slices_only(&aus[0]);
        idr.nals.insert(0, aus[0].nals[2].clone());
        assert_eq!(types(&idr), [6, 5, 5, 5, 5]);
        let out = p.push(&idr).forward.unwrap();
        assert_eq!(types(&out), [6, 7, 8, 5, 5, 5, 5]);
        assert_eq!(out.nals[1], params.sps);
        assert_eq!(out.nals[2], params.pps);
        assert_eq!(p.gate.stats().sps_pps_inserted, 1);
        // P pictures are untouched; an IDR that has them is not duplicated.
        assert_eq!(p.push(&aus[1]).forward.unwrap(), aus[1]);
        let whole = AccessUnit {
            timestamp: 2 * STEP,
            ..aus[0].clone()
        };
        assert_eq!(p.push(&whole).forward.unwrap(), whole);
        // Only the PPS missing: only the PPS is added, still once.
        let mut no_pps = whole.clone();
        no_pps.timestamp = 3 * STEP;
        no_pps.nals.retain(|n| n[0] & 0x1f != nal_type::PPS);
        assert_eq!(
            types(&p.push(&no_pps).forward.unwrap()),
            [7, 6, 8, 5, 5, 5, 5]
        );
        assert_eq!(p.gate.stats().sps_pps_inserted, 2);
    }

    #[test]
    fn in_band_parameter_sets_override_sdp() {
        let aus = clip();
        let sdp = ParameterSets::from_sprop("Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==").unwrap();
        let mut p = Pipeline::new(OnDamage::Forward, Some(sdp));
        p.push(&aus[0]);
        let idr = AccessUnit {
            timestamp: STEP,
            ..slices_only(&aus[0])
        };
        let out = p.push(&idr).forward.unwrap();
        let params = clip_params(&aus);
        assert_eq!(out.nals[..2], [params.sps, params.pps]);
    }

    #[test]
    fn no_parameter_sets_anywhere() {
        let aus = clip();
        let mut p = Pipeline::new(OnDamage::Forward, None);
        let idr = slices_only(&aus[0]);
        let out = p.push(&idr);
        assert_eq!(out.forward.unwrap(), idr, "nothing to insert");
        assert!(out.request_refresh, "NoParameterSets is damage");
    }

    #[test]
    fn timestamp_jump_is_a_discontinuity() {
        let aus = clip();
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[..3] {
            assert!(!p.push(au).discontinuity);
        }
        let mut jumped = aus[3].clone();
        jumped.timestamp += 10 * 90_000;
        let out = p.push(&jumped);
        assert!(out.forward.is_some(), "a jump alone does not drop");
        assert!(out.discontinuity && !out.request_refresh);
        let mut next = aus[4].clone();
        next.timestamp = jumped.timestamp + STEP;
        assert!(!p.push(&next).discontinuity);
        assert_eq!(p.gate.stats().discontinuities, 1);
    }

    #[test]
    fn backwards_after_drop_period_is_a_discontinuity() {
        let aus = clip();
        let second_idr = aus.iter().skip(1).position(|a| a.is_idr()).unwrap() + 1;
        let mut p = Pipeline::new(OnDamage::DropUntilKeyframe, None);
        for au in &aus[..second_idr] {
            p.push(au);
        }
        // The camera restarts: the next keyframe comes back in time, after
        // a damaged picture that carried the jump.
        let mut lost = aus[1].clone();
        lost.damaged = true;
        lost.timestamp = 100;
        let out = p.push(&lost);
        assert!(out.dropped.is_some() && !out.discontinuity);
        let mut idr = aus[second_idr].clone();
        idr.timestamp = 100 + STEP;
        let out = p.push(&idr);
        assert!(out.forward.is_some() && out.discontinuity);
    }

    #[test]
    fn arbitrary_access_units_never_panic() {
        let aus = clip();
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
                    for t in [nal_type::SPS, nal_type::PPS] {
                        let n = after.iter().filter(|&&x| x == t).count();
                        assert!(n <= before.iter().filter(|&&x| x == t).count().max(1));
                    }
                }
            }
        }
    }
}
