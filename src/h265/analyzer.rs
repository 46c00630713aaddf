//! Access-unit analysis for H.265 (ITU-T H.265 sections 7.3 and 7.4)
//! received over RTP (RFC 7798): finds what makes a picture undecodable,
//! with the damage kinds of the H.264 analyzer. Sans-IO.
//!
//! Feed every [`AccessUnit`] the depacketizer produces, in order, to
//! [`Analyzer::analyze`]; hand the returned [`Analysis`] with the same access
//! unit to [`super::repair::RepairGate::process`].
//!
//! Differences from H.264, each for a reason:
//! - H.265 has no `frame_num`, so a non-IRAP picture after lost packets
//!   cannot be proved whole: it is [`Damage::PacketLoss`].
//!   [`Damage::FrameNumGap`] is never flagged.
//! - RTP timestamps are presentation times, and B-frames send them out of
//!   order: a step back of up to [`MAX_REORDER`] is reordering, not a
//!   [`Damage::TimestampJump`].

use std::collections::BTreeMap;

use bytes::Bytes;
use h264_reader::rbsp::BitRead;

use super::params::{parse_pps, parse_sps, parse_vps, PpsFacts, SpsFacts};
use super::{header, nal_type, rbsp_reader, AccessUnit, NalHeader, ParameterSets};
pub use crate::h264::analyzer::Damage;

/// Largest forward RTP timestamp step between two access units that is not
/// a jump: 5 s at 90 kHz (as for H.264).
pub const MAX_TIMESTAMP_STEP: u32 = crate::h264::analyzer::MAX_TIMESTAMP_STEP;

/// Largest backward RTP timestamp step, from the latest timestamp seen,
/// that is B-frame reordering rather than a jump: 1 s at 90 kHz.
pub const MAX_REORDER: u32 = 90_000;

/// How many clean pictures of one kind must show the same slice segment
/// layout before a picture with fewer segments counts as
/// [`Damage::MissingSlices`] (as for H.264).
const LAYOUT_CONFIRMATIONS: u32 = 2;

/// What [`Analyzer::analyze`] found in one access unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// The picture is an IRAP picture (IDR, CRA or BLA): a keyframe.
    pub irap: bool,
    /// `nal_unit_type` of the picture's slice segments, if it has any.
    pub nal_type: Option<u8>,
    /// The picture is a RASL picture (types 8, 9): not decodable when
    /// decoding started at the CRA before it.
    pub rasl: bool,
    /// The access unit carries a VPS, an SPS and a PPS in band.
    pub has_parameter_sets: bool,
    /// An in-band VPS, SPS or PPS differs from the one previously known
    /// under the same id (in band or from the SDP). Not set on first sight.
    pub params_changed: bool,
    /// Picture size in pixels (after the conformance window) from the SPS
    /// in use, if one has been parsed.
    pub resolution: Option<(u32, u32)>,
    /// `resolution` differs from the previously known resolution.
    pub resolution_changed: bool,
    /// Every damage found, each kind at most once, in [`Damage::ALL`] order.
    pub damage: Vec<Damage>,
    /// A slice segment is a B slice (`slice_type` 0).
    pub b_frame: bool,
    /// Number of coded slice segment NAL units.
    pub slices: usize,
}

impl Analysis {
    /// True when `kind` was found.
    pub fn has(&self, kind: Damage) -> bool {
        self.damage.contains(&kind)
    }

    /// True when any damage found breaks decoding
    /// ([`Damage::breaks_decoding`]).
    pub fn breaks_decoding(&self) -> bool {
        self.damage.iter().any(|d| d.breaks_decoding())
    }

    /// The picture is a CRA or BLA: pictures after it in decoding order may
    /// be RASL pictures that refer to pictures before it.
    pub fn may_have_rasl(&self) -> bool {
        self.irap
            && !matches!(
                self.nal_type,
                Some(nal_type::IDR_W_RADL | nal_type::IDR_N_LP)
            )
    }

    fn flag(&mut self, kind: Damage) {
        if let Err(pos) = self.damage.binary_search(&kind) {
            self.damage.insert(pos, kind);
        }
    }
}

/// Counters kept by the [`Analyzer`] since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyzerStats {
    /// Access units analyzed.
    pub access_units: u64,
    /// IRAP access units.
    pub irap: u64,
    /// RASL access units.
    pub rasl: u64,
    /// Access units holding B slices.
    pub b_frames: u64,
    /// Access units with at least one damage, per [`Damage`] kind.
    damage: [u64; Damage::ALL.len()],
}

impl AnalyzerStats {
    /// Access units flagged with `kind`.
    pub fn damage(&self, kind: Damage) -> u64 {
        self.damage[kind as usize]
    }

    /// `(kind, count)` for every damage kind, in [`Damage::ALL`] order.
    pub fn damage_counts(&self) -> impl Iterator<Item = (Damage, u64)> + '_ {
        Damage::ALL.iter().map(|&d| (d, self.damage(d)))
    }
}

/// A parameter set as received with what was read from it.
struct Entry<F> {
    /// The NAL unit, to notice a changed parameter set by comparing bytes.
    raw: Bytes,
    /// What the checks need from it.
    facts: F,
}

/// Parameter sets by id.
#[derive(Default)]
struct ParamStore {
    vps: BTreeMap<u8, Entry<()>>,
    sps: BTreeMap<u8, Entry<SpsFacts>>,
    pps: BTreeMap<u8, Entry<PpsFacts>>,
}

/// Stores `raw` under `id`; true when it replaced different bytes.
fn put<F>(map: &mut BTreeMap<u8, Entry<F>>, id: u8, raw: &Bytes, facts: F) -> bool {
    match map.insert(
        id,
        Entry {
            raw: raw.clone(),
            facts,
        },
    ) {
        Some(old) => old.raw != raw,
        None => false,
    }
}

/// What the header of one slice segment says.
struct SliceFacts {
    /// `first_slice_segment_in_pic_flag`.
    first: bool,
    /// `slice_segment_address` (0 for the first segment).
    address: u32,
    /// `slice_type` (0 B, 1 P, 2 I); `None` for a dependent segment, which
    /// takes its independent segment's.
    slice_type: Option<u32>,
    /// The SPS in use.
    sps: SpsFacts,
    /// The PPS in use enables tiles.
    tiles: bool,
}

/// Why a slice segment header gave no facts.
enum SliceError {
    /// Not parsable or out of range.
    Bad,
    /// Its PPS, the PPS's SPS or the SPS's VPS was never seen.
    NoParams,
}

/// A camera's usual slice segment layout for one kind of picture.
#[derive(Default)]
struct Layout {
    /// Segment addresses of the latest clean picture.
    candidate: Vec<u32>,
    /// How many clean pictures in a row had exactly `candidate`.
    seen: u32,
}

impl Layout {
    fn learned(&self) -> Option<&[u32]> {
        (self.seen >= LAYOUT_CONFIRMATIONS).then_some(&self.candidate[..])
    }

    fn observe(&mut self, addresses: &[u32]) {
        if self.candidate == addresses {
            self.seen = self.seen.saturating_add(1);
        } else {
            self.candidate = addresses.to_vec();
            self.seen = 1;
        }
    }
}

/// Judges access units one at a time. Holds the parameter sets, the latest
/// RTP timestamp and the learned slice layouts; never reads a clock and
/// never panics on any input bytes.
pub struct Analyzer {
    /// VPS/SPS/PPS seen so far (SDP first, then in band).
    params: ParamStore,
    /// Latest RTP timestamp seen (in the forward sense), for jump detection.
    latest_timestamp: Option<u32>,
    /// Latest known resolution, to flag changes.
    resolution: Option<(u32, u32)>,
    /// Learned layout of IRAP pictures.
    irap_layout: Layout,
    /// Learned layout of other pictures.
    other_layout: Layout,
    /// Counters.
    stats: AnalyzerStats,
}

impl Analyzer {
    /// Creates an analyzer. `sdp_params` are from `sprop-vps/sps/pps`,
    /// known before any in-band parameter set; unparsable ones are ignored.
    pub fn new(sdp_params: Option<&ParameterSets>) -> Self {
        let mut a = Analyzer {
            params: ParamStore::default(),
            latest_timestamp: None,
            resolution: None,
            irap_layout: Layout::default(),
            other_layout: Layout::default(),
            stats: AnalyzerStats::default(),
        };
        if let Some(p) = sdp_params {
            for nal in [&p.vps, &p.sps, &p.pps] {
                let _ = a.store_param(nal);
            }
            a.resolution = parse_sps(&p.sps).and_then(|(_, f)| f.resolution);
        }
        a
    }

    /// Analyzes the next access unit. Call once per access unit in the order
    /// the depacketizer emits them, including those the gate will drop: the
    /// timestamp and layout state follow every picture.
    pub fn analyze(&mut self, au: &AccessUnit) -> Analysis {
        let mut a = Analysis::default();
        if au.damaged {
            a.flag(Damage::PacketLoss);
        }
        self.check_timestamp(au.timestamp, &mut a);

        let (mut has_vps, mut has_sps, mut has_pps) = (false, false, false);
        let mut new_resolution = None;
        let mut addresses = Vec::new();
        let mut all_read = true;
        let mut first_sps: Option<SpsFacts> = None;
        let mut tiles = false;
        let mut order_ok = true;
        // Header of the picture's first slice segment.
        let mut picture: Option<NalHeader> = None;
        for nal in &au.nals {
            let Some(h) = header(nal) else {
                a.flag(Damage::BadNalHeader);
                continue;
            };
            if !h.is_well_formed() || h.layer_id != 0 || h.nal_type >= nal_type::AP {
                // camgate takes single-layer streams: a decoder would drop
                // a layer other than 0.
                a.flag(Damage::BadNalHeader);
                continue;
            }
            match h.nal_type {
                nal_type::VPS | nal_type::SPS | nal_type::PPS => {
                    has_vps |= h.nal_type == nal_type::VPS;
                    has_sps |= h.nal_type == nal_type::SPS;
                    has_pps |= h.nal_type == nal_type::PPS;
                    match self.store_param(nal) {
                        Some(changed) => {
                            if changed {
                                a.params_changed = true;
                                // New parameter sets may well bring a new
                                // slice layout.
                                self.irap_layout = Layout::default();
                                self.other_layout = Layout::default();
                            }
                            if h.nal_type == nal_type::SPS {
                                new_resolution = parse_sps(nal)
                                    .and_then(|(_, f)| f.resolution)
                                    .or(new_resolution);
                            }
                        }
                        None => a.flag(Damage::BadNalHeader),
                    }
                }
                0..=nal_type::VCL_LAST => {
                    a.slices += 1;
                    match picture {
                        None => picture = Some(h),
                        // All slice segments of a picture share one type
                        // (H.265 7.4.2.4.4).
                        Some(p) if p.nal_type != h.nal_type => a.flag(Damage::BadNalHeader),
                        Some(_) => {}
                    }
                    if h.is_irap() && h.tid_plus1 != 1 {
                        // IRAP pictures have TemporalId 0 (7.4.2.2).
                        a.flag(Damage::BadNalHeader);
                    }
                    match self.read_slice(nal, h) {
                        Ok(s) => {
                            if s.first != addresses.is_empty() {
                                order_ok = false;
                            }
                            if s.address >= s.sps.pic_size_in_ctbs {
                                a.flag(Damage::MissingSlices);
                            }
                            addresses.push(s.address);
                            a.b_frame |= s.slice_type == Some(0);
                            if h.is_irap() && s.slice_type.is_some_and(|t| t != 2) {
                                // IRAP pictures hold I slices only.
                                a.flag(Damage::BadNalHeader);
                            }
                            tiles |= s.tiles;
                            first_sps.get_or_insert(s.sps);
                        }
                        Err(e) => {
                            all_read = false;
                            a.flag(match e {
                                SliceError::Bad => Damage::BadNalHeader,
                                SliceError::NoParams => Damage::NoParameterSets,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        a.irap = picture.is_some_and(|h| h.is_irap());
        a.rasl = picture.is_some_and(|h| h.is_rasl());
        a.nal_type = picture.map(|h| h.nal_type);
        a.has_parameter_sets = has_vps && has_sps && has_pps;
        if au.loss_before && !a.irap && a.slices > 0 {
            // No frame_num in H.265: the lost packets may have held a
            // picture this one refers to.
            a.flag(Damage::PacketLoss);
        }

        // Resolution: from the SPS the slices use, else an SPS in this AU.
        if let Some(res) = first_sps.and_then(|s| s.resolution).or(new_resolution) {
            if self.resolution.is_some_and(|old| old != res) {
                a.resolution_changed = true;
                self.irap_layout = Layout::default();
                self.other_layout = Layout::default();
            }
            self.resolution = Some(res);
        }
        a.resolution = self.resolution;

        let coverage_ok = self.check_coverage(&addresses, order_ok, tiles, all_read, &mut a);
        if coverage_ok && !a.breaks_decoding() && a.slices > 0 {
            let layout = if a.irap {
                &mut self.irap_layout
            } else {
                &mut self.other_layout
            };
            layout.observe(&addresses);
        }

        self.stats.access_units += 1;
        self.stats.irap += u64::from(a.irap);
        self.stats.rasl += u64::from(a.rasl);
        self.stats.b_frames += u64::from(a.b_frame);
        for &d in &a.damage {
            self.stats.damage[d as usize] += 1;
        }
        a
    }

    /// Counters since creation.
    pub fn stats(&self) -> &AnalyzerStats {
        &self.stats
    }

    /// Flags a jump: forward by more than [`MAX_TIMESTAMP_STEP`] or back by
    /// more than [`MAX_REORDER`] from the latest timestamp; re-anchors on it.
    fn check_timestamp(&mut self, ts: u32, a: &mut Analysis) {
        let Some(latest) = self.latest_timestamp else {
            self.latest_timestamp = Some(ts);
            return;
        };
        let step = ts.wrapping_sub(latest) as i32;
        if step > MAX_TIMESTAMP_STEP as i32 || step < -(MAX_REORDER as i32) {
            a.flag(Damage::TimestampJump);
            self.latest_timestamp = Some(ts);
        } else if step > 0 {
            self.latest_timestamp = Some(ts);
        }
    }

    /// Stores a VPS, SPS or PPS: `Some(changed)`, or `None` when it cannot
    /// be read.
    fn store_param(&mut self, nal: &Bytes) -> Option<bool> {
        let p = &mut self.params;
        match header(nal)?.nal_type {
            nal_type::VPS => Some(put(&mut p.vps, parse_vps(nal)?, nal, ())),
            nal_type::SPS => {
                let (id, facts) = parse_sps(nal)?;
                Some(put(&mut p.sps, id, nal, facts))
            }
            nal_type::PPS => {
                let (id, facts) = parse_pps(nal)?;
                Some(put(&mut p.pps, id, nal, facts))
            }
            _ => None,
        }
    }

    /// Checks segment order and the learned layout; false when flagged or
    /// when not every segment could be read.
    fn check_coverage(
        &self,
        addresses: &[u32],
        order_ok: bool,
        tiles: bool,
        all_read: bool,
        a: &mut Analysis,
    ) -> bool {
        if addresses.is_empty() {
            return all_read;
        }
        // With tiles, segments follow tile scan: raster addresses need only
        // be distinct.
        let increasing = if tiles {
            let mut sorted = addresses.to_vec();
            sorted.sort_unstable();
            sorted.windows(2).all(|w| w[0] < w[1])
        } else {
            addresses.windows(2).all(|w| w[0] < w[1])
        };
        if !order_ok || !increasing {
            a.flag(Damage::MissingSlices);
            return false;
        }
        if !all_read {
            return false;
        }
        // A keyframe is judged against the other pictures' layout until
        // keyframes have their own, as for H.264.
        let layout = if a.irap {
            self.irap_layout.learned().or(self.other_layout.learned())
        } else {
            self.other_layout.learned()
        };
        if let Some(layout) = layout {
            let mut mine = addresses.to_vec();
            mine.sort_unstable();
            let subset =
                mine.len() < layout.len() && mine.iter().all(|x| layout.binary_search(x).is_ok());
            if subset {
                a.flag(Damage::MissingSlices);
                return false;
            }
        }
        !a.has(Damage::MissingSlices)
    }

    /// Reads a slice segment header (H.265 7.3.6.1) up to `slice_type`.
    fn read_slice(&self, nal: &[u8], h: NalHeader) -> Result<SliceFacts, SliceError> {
        let bad = |_| SliceError::Bad;
        let mut r = rbsp_reader(nal);
        let first = r
            .read_bool("first_slice_segment_in_pic_flag")
            .map_err(bad)?;
        if h.is_irap() {
            r.skip(1, "no_output_of_prior_pics_flag").map_err(bad)?;
        }
        let pps_id = r.read_ue("slice_pic_parameter_set_id").map_err(bad)?;
        let pps = u8::try_from(pps_id)
            .ok()
            .filter(|&id| id <= 63)
            .ok_or(SliceError::Bad)?;
        let pps = self.params.pps.get(&pps).ok_or(SliceError::NoParams)?.facts;
        let sps = self
            .params
            .sps
            .get(&pps.sps_id)
            .ok_or(SliceError::NoParams)?
            .facts;
        if !self.params.vps.contains_key(&sps.vps_id) {
            return Err(SliceError::NoParams);
        }
        let mut dependent = false;
        let mut address = 0;
        if !first {
            if pps.dependent_slice_segments {
                dependent = r.read_bool("dependent_slice_segment_flag").map_err(bad)?;
            }
            if sps.address_bits > 0 {
                address = r
                    .read(sps.address_bits, "slice_segment_address")
                    .map_err(bad)?;
            }
        }
        let mut slice_type = None;
        if !dependent {
            if pps.extra_slice_header_bits > 0 {
                r.skip(pps.extra_slice_header_bits, "slice_reserved_flag")
                    .map_err(bad)?;
            }
            let t = r.read_ue("slice_type").map_err(bad)?;
            if t > 2 {
                return Err(SliceError::Bad);
            }
            slice_type = Some(t);
        }
        Ok(SliceFacts {
            first,
            address,
            slice_type,
            sps,
            tiles: pps.tiles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h265::tests::{au, clip, clip_params, without_params, STEP};

    #[test]
    fn clean_clips_have_no_damage() {
        for name in ["p.h265", "b.h265"] {
            let aus = clip(name);
            let mut an = Analyzer::new(None);
            let mut iraps = 0;
            for (i, au) in aus.iter().enumerate() {
                let a = an.analyze(au);
                assert!(a.damage.is_empty(), "{name} AU {i}: {a:?}");
                assert_eq!(a.slices, 4, "{name} AU {i}");
                assert_eq!(a.resolution, Some((640, 360)));
                assert!(!a.params_changed && !a.resolution_changed, "AU {i}");
                assert_eq!(a.irap, crate::h265::is_irap(au));
                if a.irap {
                    iraps += 1;
                    assert!(a.has_parameter_sets);
                } else {
                    assert!(!a.has_parameter_sets);
                }
            }
            assert_eq!(iraps, 2, "{name}");
            let s = an.stats();
            assert_eq!(s.access_units, aus.len() as u64);
            assert_eq!(s.irap, 2);
            assert!(s.damage_counts().all(|(_, n)| n == 0));
        }
    }

    #[test]
    fn keyframes_rasl_and_b_slices() {
        let mut an = Analyzer::new(None);
        let p: Vec<Analysis> = clip("p.h265").iter().map(|a| an.analyze(a)).collect();
        assert_eq!(p[0].nal_type, Some(nal_type::IDR_N_LP));
        assert!(!p[0].may_have_rasl());
        assert_eq!(p[25].nal_type, Some(nal_type::CRA));
        assert!(p[25].may_have_rasl());
        assert!(p.iter().all(|a| !a.b_frame && !a.rasl));
        assert_eq!(an.stats().b_frames, 0);

        let mut an = Analyzer::new(None);
        let b: Vec<Analysis> = clip("b.h265").iter().map(|a| an.analyze(a)).collect();
        let cra = b
            .iter()
            .position(|a| a.nal_type == Some(nal_type::CRA))
            .unwrap();
        assert!(
            b[cra + 1].rasl,
            "x265's open GOP puts RASL pictures after the CRA"
        );
        assert!(b[..cra].iter().all(|a| !a.rasl));
        assert!(b.iter().any(|a| a.b_frame));
        assert!(an.stats().b_frames > 0 && an.stats().rasl > 0);
    }

    #[test]
    fn damage_names_are_the_h264_ones() {
        let names: Vec<_> = Damage::ALL.iter().map(|d| d.as_str()).collect();
        for n in [
            "packet_loss",
            "missing_slices",
            "timestamp_jump",
            "bad_nal_header",
            "no_parameter_sets",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    /// The case: a keyframe whose last slice segments never came,
    /// with no sequence gap (the camera or a proxy dropped them whole).
    #[test]
    fn keyframe_missing_its_last_slice_segments() {
        let aus = clip("p.h265");
        let mut an = Analyzer::new(None);
        for au in &aus[..25] {
            assert!(an.analyze(au).damage.is_empty());
        }
        let mut cut = aus[25].clone();
        assert!(crate::h265::is_irap(&cut));
        cut.nals.truncate(cut.nals.len() - 2);
        assert!(!cut.damaged && !cut.loss_before);
        let a = an.analyze(&cut);
        assert!(a.irap);
        assert_eq!(a.slices, 2);
        assert_eq!(a.damage, vec![Damage::MissingSlices]);
        assert_eq!(an.stats().damage(Damage::MissingSlices), 1);
        // The whole keyframe is clean.
        let mut an = Analyzer::new(None);
        for au in &aus[..26] {
            assert!(an.analyze(au).damage.is_empty());
        }

        // Keyframes learn their own layout: after two whole ones, a cut one
        // is judged against it.
        let mut an = Analyzer::new(None);
        for (i, au) in [&aus[0], &aus[25], &aus[0]].into_iter().enumerate() {
            let au = AccessUnit {
                timestamp: i as u32 * STEP,
                ..au.clone()
            };
            assert!(an.analyze(&au).damage.is_empty());
        }
        cut.timestamp = 3 * STEP;
        assert_eq!(an.analyze(&cut).damage, vec![Damage::MissingSlices]);
    }

    #[test]
    fn picture_missing_first_or_middle_segment() {
        let aus = clip("p.h265");
        let mut an = Analyzer::new(None);
        for au in &aus[..5] {
            an.analyze(au);
        }
        let mut no_first = aus[5].clone();
        no_first.nals.remove(0);
        assert_eq!(an.analyze(&no_first).damage, vec![Damage::MissingSlices]);
        let mut no_middle = aus[6].clone();
        no_middle.nals.remove(2);
        assert_eq!(an.analyze(&no_middle).damage, vec![Damage::MissingSlices]);
        let mut swapped = aus[7].clone();
        swapped.nals.swap(1, 2);
        assert_eq!(an.analyze(&swapped).damage, vec![Damage::MissingSlices]);
        // Two pictures' first segments in one access unit.
        let mut twice = aus[8].clone();
        twice.nals.push(aus[9].nals[0].clone());
        assert!(an.analyze(&twice).has(Damage::MissingSlices));
    }

    #[test]
    fn loss_is_packet_loss() {
        let aus = clip("p.h265");
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        let mut lost = aus[1].clone();
        lost.damaged = true;
        let s = &lost.nals[0];
        lost.nals[0] = s.slice(..s.len() / 2);
        assert_eq!(an.analyze(&lost).damage, vec![Damage::PacketLoss]);
        // Loss before a P picture: it may refer to what was lost.
        let mut after = aus[2].clone();
        after.loss_before = true;
        assert_eq!(an.analyze(&after).damage, vec![Damage::PacketLoss]);
        // Loss before an IRAP picture harms nothing.
        let mut irap = aus[25].clone();
        irap.loss_before = true;
        assert!(an.analyze(&irap).damage.is_empty());
        assert_eq!(an.stats().damage(Damage::PacketLoss), 2);
    }

    #[test]
    fn timestamp_jumps_and_reordering() {
        let aus = clip("p.h265");
        let mut an = Analyzer::new(None);
        let mut ts = |i: usize, t: u32| {
            let mut au = aus[i].clone();
            au.timestamp = t;
            an.analyze(&au).damage
        };
        let t0 = 1_000_000;
        assert!(ts(0, t0).is_empty());
        // B-frame order: forward 4 pictures, then back within them.
        assert!(ts(1, t0 + 4 * STEP).is_empty());
        assert!(ts(2, t0 + 2 * STEP).is_empty());
        assert!(ts(3, t0 + STEP).is_empty());
        assert!(ts(4, t0 + 3 * STEP).is_empty());
        assert!(ts(5, t0 + 8 * STEP).is_empty());
        // Back by more than a second, forward by more than 5 s.
        let back = t0 + 8 * STEP - MAX_REORDER - 1;
        assert_eq!(ts(6, back), vec![Damage::TimestampJump]);
        assert_eq!(
            ts(7, back + MAX_TIMESTAMP_STEP + 1),
            vec![Damage::TimestampJump]
        );
        // Back near 2^32 is a jump; wrapping forward from there is not.
        assert!(!ts(8, u32::MAX - 10).is_empty());
        assert!(ts(9, STEP).is_empty());
    }

    #[test]
    fn bad_nal_headers() {
        let aus = clip("p.h265");
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        let slice = aus[1].nals[1].clone();
        let with_header = |b0: u8, b1: u8| {
            let mut v = slice.to_vec();
            v[0] = b0;
            v[1] = b1;
            v
        };
        for bad in [
            with_header(0x80 | slice[0], slice[1]), // forbidden bit
            with_header(slice[0], 0x00),            // TID 0
            with_header(slice[0], 0x08 | 1),        // layer id 1
            vec![0x02],                             // header cut short
            vec![0x62, 0x01, 0x81],                 // an FU left in an access unit
            // slice_type 3: first segment, PPS 0, no extra bits, ue(3).
            vec![0x02, 0x01, 0b1100_1000, 0x80],
            vec![0x02, 0x01], // slice header cut short
        ] {
            let mut au = aus[1].clone();
            au.nals.push(Bytes::from(bad.clone()));
            assert!(an.analyze(&au).has(Damage::BadNalHeader), "{bad:x?}");
        }
        // IRAP and non-IRAP segments mixed; an IRAP segment with TID 1.
        let mut mixed = aus[0].clone();
        mixed.nals.push(aus[1].nals[1].clone());
        assert!(an.analyze(&mixed).has(Damage::BadNalHeader));
        let mut tid = aus[0].clone();
        let last = tid.nals.len() - 1;
        let mut v = tid.nals[last].to_vec();
        v[1] = 2;
        tid.nals[last] = Bytes::from(v);
        assert!(an.analyze(&tid).has(Damage::BadNalHeader));
    }

    #[test]
    fn slices_need_parameter_sets() {
        let aus = clip("p.h265");
        let params = clip_params(&aus);
        let mut an = Analyzer::new(None);
        let a = an.analyze(&without_params(&aus[0]));
        assert_eq!(a.damage, vec![Damage::NoParameterSets]);
        assert_eq!(a.resolution, None);
        // SDP parameter sets are enough.
        let mut an = Analyzer::new(Some(&params));
        let a = an.analyze(&without_params(&aus[0]));
        assert!(a.damage.is_empty(), "{a:?}");
        assert!(a.irap && !a.has_parameter_sets && a.resolution == Some((640, 360)));
        // In band but the same as the SDP: not a change.
        assert!(!an.analyze(&aus[0]).params_changed);
        // SPS and PPS without the VPS are not enough.
        let mut an = Analyzer::new(None);
        let mut no_vps = aus[0].clone();
        no_vps.nals.remove(0);
        assert_eq!(an.analyze(&no_vps).damage, vec![Damage::NoParameterSets]);
    }

    #[test]
    fn parameter_set_change() {
        let aus = clip("p.h265");
        let b = clip("b.h265");
        let mut an = Analyzer::new(Some(&clip_params(&b)));
        let a = an.analyze(&aus[0]);
        assert!(a.damage.is_empty(), "{a:?}");
        assert!(a.params_changed, "x265 writes different SPS for B-frames");
        assert!(!a.resolution_changed);
        assert!(!an.analyze(&aus[1]).params_changed);
        // A truncated SPS cannot be read.
        let mut bad = aus[25].clone();
        let sps = bad.nals[1].clone();
        bad.nals[1] = sps.slice(..6);
        assert!(an.analyze(&bad).has(Damage::BadNalHeader));
    }

    #[test]
    fn mutated_clip_never_panics() {
        let aus = clip("b.h265");
        let mut an = Analyzer::new(Some(&clip_params(&aus)));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3 {
            for au in &aus {
                let mut au = au.clone();
                for nal in &mut au.nals {
                    let mut v = nal.to_vec();
                    for _ in 0..(next() % 4) {
                        let i = (next() as usize) % v.len().min(24);
                        v[i] ^= 1 << (next() % 8);
                    }
                    if round == 2 {
                        v.truncate((next() as usize) % (v.len() + 1));
                    }
                    *nal = Bytes::from(v);
                }
                let a = an.analyze(&au);
                assert!(a.damage.windows(2).all(|w| w[0] < w[1]));
            }
        }
        assert_eq!(an.stats().access_units, 3 * aus.len() as u64);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_nals_never_panic(
            nals in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..8),
            ts in proptest::num::u32::ANY,
        ) {
            let aus = clip("p.h265");
            let mut an = Analyzer::new(Some(&clip_params(&aus)));
            let a = an.analyze(&au(ts, nals.into_iter().map(Bytes::from).collect()));
            proptest::prop_assert!(a.damage.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
