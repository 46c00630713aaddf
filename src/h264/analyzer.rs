//! Access-unit analysis for H.264 (ITU-T H.264 sections 7.3 and 7.4) received
//! over RTP (RFC 6184): finds what makes a picture undecodable. Sans-IO.
//!
//! Feed every [`AccessUnit`] the depacketizer produces, in order, to
//! [`Analyzer::analyze`]; hand the returned [`Analysis`] with the same access
//! unit to [`super::repair::RepairGate::process`].

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use h264_reader::nal::pps::PicParameterSet;
use h264_reader::nal::slice::{
    DecRefPicMarking, MemoryManagementControlOperation, SliceHeader, SliceHeaderError,
};
use h264_reader::nal::sps::{FrameMbsFlags, SeqParameterSet};
use h264_reader::nal::NalHeader;
use h264_reader::rbsp::{BitRead, BitReader, ByteReader};
use h264_reader::Context;

use super::{nal_type, AccessUnit, ParameterSets};

/// Largest forward RTP timestamp step between two access units that is not
/// a jump: 5 s at 90 kHz.
pub const MAX_TIMESTAMP_STEP: u32 = 5 * 90_000;

/// How many clean pictures of one kind must show the same slice layout
/// before a picture with fewer slices counts as [`Damage::MissingSlices`].
/// Two keeps cameras that cut slices by byte size (a layout that changes
/// every picture) from ever being judged against a layout.
const LAYOUT_CONFIRMATIONS: u32 = 2;

/// Largest picture accepted from an SPS, in macroblocks. Level 6.2 allows
/// 139 264; the margin only keeps hostile sizes from overflowing the
/// arithmetic in h264-reader's PPS parser.
const MAX_PICTURE_MBS: u64 = 1 << 20;

/// One reason an access unit may not decode. Several can apply at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Damage {
    /// Packets were lost inside the picture or its RTP payload was
    /// malformed (`AccessUnit::damaged`), or packets were lost before it and
    /// its `frame_num` could not be read to prove nothing it needs was lost.
    PacketLoss,
    /// Slice coverage is incomplete: the first slice does not start at
    /// macroblock 0, slices do not increase strictly, a slice starts outside
    /// the picture, or the slices are a strict subset of the camera's
    /// learned layout (typically a keyframe missing its lower slices).
    MissingSlices,
    /// `frame_num` skipped a value (H.264 7.4.3): a reference picture is
    /// missing. With `gaps_in_frame_num_value_allowed_flag` set, only a gap
    /// that coincides with packet loss before the picture counts.
    FrameNumGap,
    /// The RTP timestamp went backwards or forwards by more than
    /// [`MAX_TIMESTAMP_STEP`]. The picture itself may decode; the timeline
    /// needs re-anchoring.
    TimestampJump,
    /// A NAL unit is empty, has the forbidden bit set or type 0, an SPS,
    /// PPS or slice header cannot be parsed, or IDR and non-IDR slices are
    /// mixed in one picture.
    BadNalHeader,
    /// A slice refers to a PPS, or a PPS to an SPS, never seen in band or
    /// in the SDP.
    NoParameterSets,
}

impl Damage {
    /// Every kind, in declaration order (for metrics registration).
    pub const ALL: [Damage; 6] = [
        Damage::PacketLoss,
        Damage::MissingSlices,
        Damage::FrameNumGap,
        Damage::TimestampJump,
        Damage::BadNalHeader,
        Damage::NoParameterSets,
    ];

    /// The snake_case name used as the metrics label `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::PacketLoss => "packet_loss",
            Damage::MissingSlices => "missing_slices",
            Damage::FrameNumGap => "frame_num_gap",
            Damage::TimestampJump => "timestamp_jump",
            Damage::BadNalHeader => "bad_nal_header",
            Damage::NoParameterSets => "no_parameter_sets",
        }
    }

    /// True when a decoder cannot reconstruct this picture (and the pictures
    /// referring to it) correctly. Only [`Damage::TimestampJump`] is not.
    pub fn breaks_decoding(self) -> bool {
        self != Damage::TimestampJump
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Analyzer::analyze`] found in one access unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// The picture holds IDR slices (a keyframe).
    pub idr: bool,
    /// The access unit carries both an SPS and a PPS in band.
    pub has_sps_pps: bool,
    /// An in-band SPS or PPS differs from the one previously known under the
    /// same id (in band or from the SDP). Not set on first sight.
    pub params_changed: bool,
    /// Picture size in pixels (after cropping) from the SPS in use, if one
    /// has been parsed.
    pub resolution: Option<(u32, u32)>,
    /// `resolution` differs from the previously known resolution.
    pub resolution_changed: bool,
    /// Every damage found, each kind at most once, in [`Damage::ALL`] order.
    pub damage: Vec<Damage>,
    /// A slice is a B slice (`slice_type % 5 == 1`).
    pub b_frame: bool,
    /// `frame_num` of the first slice, if its header could be read.
    pub frame_num: Option<u32>,
    /// Number of coded slice NAL units (types 1 and 5).
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
    /// Access units holding IDR slices.
    pub idr: u64,
    /// Access units holding B slices.
    pub b_frames: u64,
    /// In-band SPS/PPS NAL units whose id could be read but which
    /// h264-reader could not parse (a camera quirk, tolerated: slices using
    /// them are only checked for coverage).
    pub unparsed_parameter_sets: u64,
    /// Access units with at least one damage, per [`Damage`] index.
    damage: [u64; Damage::ALL.len()],
}

impl AnalyzerStats {
    /// Access units flagged with `kind`.
    pub fn damage(&self, kind: Damage) -> u64 {
        self.damage[kind.index()]
    }

    /// `(kind, count)` for every damage kind, in [`Damage::ALL`] order.
    pub fn damage_counts(&self) -> impl Iterator<Item = (Damage, u64)> + '_ {
        Damage::ALL.iter().map(|&d| (d, self.damage(d)))
    }
}

/// The SPS fields the analysis needs, read once when the SPS arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpsFacts {
    /// `log2_max_frame_num_minus4 + 4`: bits of `frame_num`.
    log2_max_frame_num: u8,
    /// `frame_mbs_only_flag`: no `field_pic_flag` in slice headers.
    frame_mbs_only: bool,
    /// `mb_adaptive_frame_field_flag`: macroblock pairs in frame pictures.
    mbaff: bool,
    /// `separate_colour_plane_flag`: a `colour_plane_id` in slice headers.
    separate_colour_plane: bool,
    /// `gaps_in_frame_num_value_allowed_flag`.
    gaps_allowed: bool,
    /// `PicWidthInMbs * FrameHeightInMbs`: macroblocks of a frame.
    frame_mbs: u32,
    /// Pixel size after cropping, if the cropping is consistent.
    resolution: Option<(u32, u32)>,
}

impl SpsFacts {
    fn new(sps: &SeqParameterSet) -> Option<Self> {
        let (frame_mbs_only, mbaff) = match sps.frame_mbs_flags {
            FrameMbsFlags::Frames => (true, false),
            FrameMbsFlags::Fields {
                mb_adaptive_frame_field_flag,
            } => (false, mb_adaptive_frame_field_flag),
        };
        let width = u64::from(sps.pic_width_in_mbs_minus1) + 1;
        let height = (u64::from(sps.pic_height_in_map_units_minus1) + 1)
            * if frame_mbs_only { 1 } else { 2 };
        let map_units = width * (u64::from(sps.pic_height_in_map_units_minus1) + 1);
        if map_units > MAX_PICTURE_MBS || width * height > MAX_PICTURE_MBS {
            return None;
        }
        Some(SpsFacts {
            log2_max_frame_num: sps.log2_max_frame_num(),
            frame_mbs_only,
            mbaff,
            separate_colour_plane: sps.chroma_info.separate_colour_plane_flag,
            gaps_allowed: sps.gaps_in_frame_num_value_allowed_flag,
            frame_mbs: u32::try_from(width * height).ok()?,
            resolution: sps.pixel_dimensions().ok(),
        })
    }
}

/// An SPS as received, with what could be parsed from it.
struct SpsEntry {
    /// The NAL unit, to notice a changed SPS by comparing bytes.
    raw: Bytes,
    /// `None` when h264-reader could not parse it (or it is absurdly large).
    facts: Option<SpsFacts>,
}

/// A PPS as received.
struct PpsEntry {
    /// The NAL unit, to notice a changed PPS and to re-parse it when its SPS
    /// changes.
    raw: Bytes,
    /// `seq_parameter_set_id`, readable even when the PPS is not parsable.
    sps_id: u32,
    /// h264-reader parsed it, so `Context` holds this very PPS.
    parsed: bool,
}

/// Parameter sets by id: the raw bytes decide "seen" and "changed", the
/// h264-reader `Context` serves slice header validation.
#[derive(Default)]
struct ParamStore {
    /// Parsed SPS/PPS for `SliceHeader::from_bits`. It cannot forget an
    /// entry, so lookups go through `sps`/`pps` first.
    ctx: Context,
    sps: BTreeMap<u32, SpsEntry>,
    pps: BTreeMap<u32, PpsEntry>,
}

/// The result of storing an SPS or PPS.
struct ParamUpdate {
    /// Replaced different bytes under the same id.
    changed: bool,
    /// Bytes not stored before under this id (first sight or change).
    fresh: bool,
    /// h264-reader could not parse it.
    unparsed: bool,
}

impl ParamStore {
    /// Stores an SPS NAL unit. `Err` when even its id cannot be read.
    fn put_sps(&mut self, nal: &Bytes) -> Result<ParamUpdate, ()> {
        let id = read_sps_id(nal).ok_or(())?;
        if let Some(old) = self.sps.get(&id) {
            if old.raw == nal {
                return Ok(ParamUpdate {
                    changed: false,
                    fresh: false,
                    unparsed: old.facts.is_none(),
                });
            }
        }
        let parsed =
            SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(&nal[..])))
                .ok()
                .and_then(|sps| SpsFacts::new(&sps).map(|facts| (sps, facts)));
        let facts = parsed.as_ref().map(|(_, facts)| *facts);
        if let Some((sps, _)) = parsed {
            self.ctx.put_seq_param_set(sps);
        }
        let old = self.sps.insert(
            id,
            SpsEntry {
                raw: nal.clone(),
                facts,
            },
        );
        // PPS parsing depends on the SPS (scaling lists, slice groups).
        let dependents: Vec<u32> = self
            .pps
            .iter()
            .filter(|(_, p)| p.sps_id == id)
            .map(|(&k, _)| k)
            .collect();
        for pps_id in dependents {
            if let Some(raw) = self.pps.get(&pps_id).map(|p| p.raw.clone()) {
                let parsed = self.parse_pps(&raw, id);
                if let Some(p) = self.pps.get_mut(&pps_id) {
                    p.parsed = parsed;
                }
            }
        }
        Ok(ParamUpdate {
            changed: old.is_some(),
            fresh: true,
            unparsed: facts.is_none(),
        })
    }

    /// Stores a PPS NAL unit. `Err` when even its ids cannot be read.
    fn put_pps(&mut self, nal: &Bytes) -> Result<ParamUpdate, ()> {
        let (id, sps_id) = read_pps_ids(nal).ok_or(())?;
        if let Some(old) = self.pps.get(&id) {
            if old.raw == nal {
                return Ok(ParamUpdate {
                    changed: false,
                    fresh: false,
                    unparsed: !old.parsed,
                });
            }
        }
        let parsed = self.parse_pps(nal, sps_id);
        let old = self.pps.insert(
            id,
            PpsEntry {
                raw: nal.clone(),
                sps_id,
                parsed,
            },
        );
        Ok(ParamUpdate {
            changed: old.is_some(),
            fresh: true,
            unparsed: !parsed,
        })
    }

    /// Parses a PPS into the context if its SPS is parsed; true on success.
    fn parse_pps(&mut self, nal: &[u8], sps_id: u32) -> bool {
        if self.sps_facts(sps_id).is_none() {
            return false;
        }
        let reader = BitReader::new(ByteReader::skipping_h264_header(nal));
        match PicParameterSet::from_bits(&self.ctx, reader) {
            Ok(pps) => {
                self.ctx.put_pic_param_set(pps);
                true
            }
            Err(_) => false,
        }
    }

    fn sps_facts(&self, id: u32) -> Option<SpsFacts> {
        self.sps.get(&id).and_then(|s| s.facts)
    }
}

/// `seq_parameter_set_id` of an SPS NAL unit, if it is in range.
fn read_sps_id(nal: &[u8]) -> Option<u32> {
    let mut r = BitReader::new(ByteReader::skipping_h264_header(nal));
    r.skip(24, "profile_idc, constraint flags, level_idc")
        .ok()?;
    let id = r.read_ue("seq_parameter_set_id").ok()?;
    (id < 32).then_some(id)
}

/// `(pic_parameter_set_id, seq_parameter_set_id)` of a PPS, if in range.
fn read_pps_ids(nal: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(ByteReader::skipping_h264_header(nal));
    let id = r.read_ue("pic_parameter_set_id").ok()?;
    let sps_id = r.read_ue("seq_parameter_set_id").ok()?;
    (id < 256 && sps_id < 32).then_some((id, sps_id))
}

/// What the header of one slice says.
struct SliceFacts {
    first_mb: u32,
    /// `slice_type % 5`: 0 P, 1 B, 2 I, 3 SP, 4 SI.
    slice_type: u32,
    /// `None` when the PPS or SPS in use could not be parsed.
    checked: Option<CheckedSlice>,
}

/// Slice header fields that need the parsed SPS/PPS.
struct CheckedSlice {
    sps: SpsFacts,
    frame_num: u32,
    field_pic: bool,
    /// `memory_management_control_operation` 5: `frame_num` restarts at 0.
    mmco5: bool,
}

/// Why a slice header gave no facts.
enum SliceError {
    /// Not parsable.
    Bad,
    /// Its PPS, or the PPS's SPS, was never seen.
    NoParams,
}

/// State carried from one reference picture to the next for the
/// `frame_num` rule (H.264 7.4.3).
#[derive(Clone, Copy, Debug)]
struct FrameNumState {
    /// `PrevRefFrameNum`.
    prev_ref: u32,
    /// `log2_max_frame_num` it was coded with; a change skips the check.
    log2_max: u8,
}

/// A camera's usual slice layout for one kind of picture.
#[derive(Default)]
struct Layout {
    /// `first_mb_in_slice` values of the latest clean picture.
    candidate: Vec<u32>,
    /// How many clean pictures in a row had exactly `candidate`.
    seen: u32,
}

impl Layout {
    fn learned(&self) -> Option<&[u32]> {
        (self.seen >= LAYOUT_CONFIRMATIONS).then_some(&self.candidate[..])
    }

    fn observe(&mut self, first_mbs: &[u32]) {
        if self.candidate == first_mbs {
            self.seen = self.seen.saturating_add(1);
        } else {
            self.candidate = first_mbs.to_vec();
            self.seen = 1;
        }
    }
}

/// Judges access units one at a time. Holds the parameter sets, the
/// `frame_num` state, the previous RTP timestamp and the learned slice
/// layouts; never reads a clock and never panics on any input bytes.
pub struct Analyzer {
    /// SPS/PPS seen so far (SDP first, then in band).
    params: ParamStore,
    /// RTP timestamp of the previous access unit, for jump detection.
    prev_timestamp: Option<u32>,
    /// `None` until a picture's `frame_num` is known, and again after a
    /// picture whose `frame_num` could not be read.
    frame_num: Option<FrameNumState>,
    /// Latest known resolution, to flag changes.
    resolution: Option<(u32, u32)>,
    /// Learned layout of IDR pictures.
    idr_layout: Layout,
    /// Learned layout of non-IDR pictures.
    other_layout: Layout,
    /// Counters.
    stats: AnalyzerStats,
}

impl Analyzer {
    /// Creates an analyzer. `sdp_params` are the SDP `sprop-parameter-sets`,
    /// known before any in-band SPS/PPS; unparsable ones are ignored.
    pub fn new(sdp_params: Option<&ParameterSets>) -> Self {
        let mut a = Analyzer {
            params: ParamStore::default(),
            prev_timestamp: None,
            frame_num: None,
            resolution: None,
            idr_layout: Layout::default(),
            other_layout: Layout::default(),
            stats: AnalyzerStats::default(),
        };
        if let Some(p) = sdp_params {
            if let Some(sps_id) = read_sps_id(&p.sps) {
                let _ = a.params.put_sps(&p.sps);
                a.resolution = a.params.sps_facts(sps_id).and_then(|f| f.resolution);
            }
            let _ = a.params.put_pps(&p.pps);
        }
        a
    }

    /// Analyzes the next access unit. Call once per access unit in the order
    /// the depacketizer emits them, including those the gate will drop: the
    /// `frame_num`, timestamp and layout state follow every picture.
    pub fn analyze(&mut self, au: &AccessUnit) -> Analysis {
        let mut a = Analysis::default();
        if au.damaged {
            a.flag(Damage::PacketLoss);
        }
        if let Some(prev) = self.prev_timestamp {
            let step = au.timestamp.wrapping_sub(prev);
            if (step as i32) < 0 || step > MAX_TIMESTAMP_STEP {
                a.flag(Damage::TimestampJump);
            }
        }
        self.prev_timestamp = Some(au.timestamp);

        let (mut has_sps, mut has_pps, mut non_idr) = (false, false, false);
        let mut new_resolution = None;
        let mut first_mbs = Vec::new();
        let mut all_slices_read = true;
        let mut first: Option<CheckedSlice> = None;
        let mut unchecked = false;
        for nal in &au.nals {
            let Some(&header) = nal.first() else {
                a.flag(Damage::BadNalHeader);
                continue;
            };
            if header & 0x80 != 0 || header & 0x1f == 0 {
                a.flag(Damage::BadNalHeader);
                continue;
            }
            match header & 0x1f {
                nal_type::SPS => {
                    has_sps = true;
                    match self.params.put_sps(nal) {
                        Ok(u) => {
                            self.note_param_update(&u, &mut a);
                            if let Some(f) =
                                read_sps_id(nal).and_then(|id| self.params.sps_facts(id))
                            {
                                new_resolution = f.resolution.or(new_resolution);
                            }
                        }
                        Err(()) => a.flag(Damage::BadNalHeader),
                    }
                }
                nal_type::PPS => {
                    has_pps = true;
                    match self.params.put_pps(nal) {
                        Ok(u) => self.note_param_update(&u, &mut a),
                        Err(()) => a.flag(Damage::BadNalHeader),
                    }
                }
                nal_type::SLICE | nal_type::IDR => {
                    a.slices += 1;
                    if header & 0x1f == nal_type::IDR {
                        a.idr = true;
                    } else {
                        non_idr = true;
                    }
                    match self.read_slice(nal) {
                        Ok(s) => {
                            first_mbs.push(s.first_mb);
                            a.b_frame |= s.slice_type == 1;
                            match s.checked {
                                Some(c) => {
                                    let field_size = c.sps.frame_mbs >> u32::from(c.field_pic);
                                    let mbaff = c.sps.mbaff && !c.field_pic;
                                    let addr = u64::from(s.first_mb) << u32::from(mbaff);
                                    if addr >= u64::from(field_size) {
                                        a.flag(Damage::MissingSlices);
                                    }
                                    if first.is_none() {
                                        first = Some(c);
                                    }
                                }
                                None => unchecked = true,
                            }
                        }
                        Err(e) => {
                            all_slices_read = false;
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
        a.has_sps_pps = has_sps && has_pps;
        if a.idr && non_idr {
            a.flag(Damage::BadNalHeader);
        }

        // Resolution: from the SPS the slices use, else an SPS in this AU.
        if let Some(res) = first
            .as_ref()
            .and_then(|c| c.sps.resolution)
            .or(new_resolution)
        {
            if self.resolution.is_some_and(|old| old != res) {
                a.resolution_changed = true;
                self.idr_layout = Layout::default();
                self.other_layout = Layout::default();
            }
            self.resolution = Some(res);
        }
        a.resolution = self.resolution;

        let coverage_ok = self.check_coverage(&first_mbs, all_slices_read, &mut a);
        self.check_frame_num(au, first.as_ref().filter(|_| !unchecked), &mut a);

        if coverage_ok && !a.breaks_decoding() && a.slices > 0 {
            let layout = if a.idr {
                &mut self.idr_layout
            } else {
                &mut self.other_layout
            };
            layout.observe(&first_mbs);
        }

        self.stats.access_units += 1;
        self.stats.idr += u64::from(a.idr);
        self.stats.b_frames += u64::from(a.b_frame);
        for d in &a.damage {
            self.stats.damage[d.index()] += 1;
        }
        a
    }

    /// Counters since creation.
    pub fn stats(&self) -> &AnalyzerStats {
        &self.stats
    }

    fn note_param_update(&mut self, u: &ParamUpdate, a: &mut Analysis) {
        if u.changed {
            a.params_changed = true;
            // A new SPS/PPS may well come with a new slice layout.
            self.idr_layout = Layout::default();
            self.other_layout = Layout::default();
        }
        if u.unparsed && u.fresh {
            self.stats.unparsed_parameter_sets += 1;
        }
    }

    /// Checks slice order and the learned layout; false when flagged or when
    /// not every slice could be read.
    fn check_coverage(&self, first_mbs: &[u32], all_read: bool, a: &mut Analysis) -> bool {
        if first_mbs.is_empty() {
            return all_read;
        }
        let ordered = first_mbs[0] == 0 && first_mbs.windows(2).all(|w| w[0] < w[1]);
        if !ordered {
            a.flag(Damage::MissingSlices);
            return false;
        }
        if !all_read {
            return false;
        }
        // A keyframe is judged against the P-picture layout until keyframes
        // have their own: cameras that slice by bytes give keyframes more
        // slices, never fewer, so this cannot misfire the other way round.
        let layout = if a.idr {
            self.idr_layout.learned().or(self.other_layout.learned())
        } else {
            self.other_layout.learned()
        };
        if let Some(layout) = layout {
            let subset = first_mbs.len() < layout.len()
                && first_mbs.iter().all(|mb| layout.binary_search(mb).is_ok());
            if subset {
                a.flag(Damage::MissingSlices);
                return false;
            }
        }
        !a.has(Damage::MissingSlices)
    }

    /// Applies the H.264 7.4.3 `frame_num` rule and updates its state.
    fn check_frame_num(&mut self, au: &AccessUnit, first: Option<&CheckedSlice>, a: &mut Analysis) {
        if a.slices == 0 {
            return;
        }
        let Some(slice) = first else {
            self.frame_num = None;
            if au.loss_before && !a.idr {
                // Cannot prove the lost packets held nothing this refers to.
                a.flag(Damage::PacketLoss);
            }
            return;
        };
        a.frame_num = Some(slice.frame_num);
        let log2_max = slice.sps.log2_max_frame_num;
        let max = 1u32 << log2_max;
        let reference = au
            .nals
            .iter()
            .filter_map(|n| n.first())
            .any(|&h| matches!(h & 0x1f, nal_type::SLICE | nal_type::IDR) && h & 0x60 != 0);
        let mut prev_ref = slice.frame_num;
        if !a.idr {
            if let Some(state) = self.frame_num.filter(|s| s.log2_max == log2_max) {
                let expected = (state.prev_ref + 1) % max;
                let gap = slice.frame_num != state.prev_ref && slice.frame_num != expected;
                if gap && (!slice.sps.gaps_allowed || au.loss_before) {
                    a.flag(Damage::FrameNumGap);
                }
                if !reference {
                    prev_ref = if gap {
                        // Allowed gap: the decoder infers the missing frames.
                        (slice.frame_num + max - 1) % max
                    } else {
                        state.prev_ref
                    };
                }
            }
        }
        if slice.mmco5 {
            prev_ref = 0;
        }
        self.frame_num = Some(FrameNumState { prev_ref, log2_max });
    }

    /// Reads a coded slice header (H.264 7.3.3) far enough for the checks,
    /// then lets h264-reader validate the whole header.
    fn read_slice(&self, nal: &[u8]) -> Result<SliceFacts, SliceError> {
        let mut r = BitReader::new(ByteReader::skipping_h264_header(nal));
        let first_mb = r
            .read_ue("first_mb_in_slice")
            .map_err(|_| SliceError::Bad)?;
        let slice_type = r.read_ue("slice_type").map_err(|_| SliceError::Bad)?;
        let pps_id = r
            .read_ue("pic_parameter_set_id")
            .map_err(|_| SliceError::Bad)?;
        if slice_type > 9 || pps_id > 255 {
            return Err(SliceError::Bad);
        }
        let pps = self.params.pps.get(&pps_id).ok_or(SliceError::NoParams)?;
        let sps = self
            .params
            .sps
            .get(&pps.sps_id)
            .ok_or(SliceError::NoParams)?;
        let mut facts = SliceFacts {
            first_mb,
            slice_type: slice_type % 5,
            checked: None,
        };
        let Some(sps) = sps.facts.filter(|_| pps.parsed) else {
            return Ok(facts);
        };
        if sps.separate_colour_plane {
            r.skip(2, "colour_plane_id").map_err(|_| SliceError::Bad)?;
        }
        let frame_num: u32 = r
            .read(u32::from(sps.log2_max_frame_num), "frame_num")
            .map_err(|_| SliceError::Bad)?;
        let field_pic =
            !sps.frame_mbs_only && r.read_bool("field_pic_flag").map_err(|_| SliceError::Bad)?;

        let header = nal
            .first()
            .and_then(|&b| NalHeader::new(b).ok())
            .ok_or(SliceError::Bad)?;
        let mut full = BitReader::new(ByteReader::skipping_h264_header(nal));
        let mmco5 = match SliceHeader::from_bits(&self.params.ctx, &mut full, header) {
            Ok((h, _, _)) => matches!(
                h.dec_ref_pic_marking,
                Some(DecRefPicMarking::Adaptive(ref ops))
                    if ops.iter().any(|op| matches!(op, MemoryManagementControlOperation::AllRefPicturesUnused))
            ),
            // h264-reader limits (weighted bi-prediction, MVC), not damage.
            Err(SliceHeaderError::UnsupportedSyntax(_)) => false,
            Err(_) => return Err(SliceError::Bad),
        };
        facts.checked = Some(CheckedSlice {
            sps,
            frame_num,
            field_pic,
            mmco5,
        });
        Ok(facts)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::h264::split_annex_b;

    /// RTP timestamp step of the simulated camera (25 fps at 90 kHz).
    pub(crate) const STEP: u32 = 3600;

    /// The simulated camera's clip as access units (4 slices per picture,
    /// SPS/PPS/SEI before each IDR), one every [`STEP`].
    pub(crate) fn clip() -> Vec<AccessUnit> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sim-clip.h264");
        let data = std::fs::read(path).expect("the clip is part of the repository");
        let mut aus = Vec::new();
        let mut cur: Vec<Bytes> = Vec::new();
        let mut has_slice = false;
        for nal in split_annex_b(&data) {
            let t = nal[0] & 0x1f;
            let is_slice = t == nal_type::SLICE || t == nal_type::IDR;
            // first_mb_in_slice == 0 is the ue code "1": the top bit.
            let starts_picture = !is_slice || nal.get(1).is_some_and(|b| b & 0x80 != 0);
            if has_slice && starts_picture {
                aus.push(au(aus.len() as u32 * STEP, std::mem::take(&mut cur)));
                has_slice = false;
            }
            has_slice |= is_slice;
            cur.push(Bytes::copy_from_slice(nal));
        }
        if !cur.is_empty() {
            aus.push(au(aus.len() as u32 * STEP, cur));
        }
        aus
    }

    pub(crate) fn au(timestamp: u32, nals: Vec<Bytes>) -> AccessUnit {
        AccessUnit {
            timestamp,
            nals,
            damaged: false,
            loss_before: false,
        }
    }

    /// The clip's SPS and PPS.
    pub(crate) fn clip_params(aus: &[AccessUnit]) -> ParameterSets {
        let find = |t| {
            aus[0]
                .nals
                .iter()
                .find(|n| n[0] & 0x1f == t)
                .expect("the clip starts with SPS and PPS")
                .clone()
        };
        ParameterSets {
            sps: find(nal_type::SPS),
            pps: find(nal_type::PPS),
        }
    }

    /// The access unit without its SPS, PPS and SEI.
    pub(crate) fn slices_only(au: &AccessUnit) -> AccessUnit {
        let mut au = au.clone();
        au.nals
            .retain(|n| matches!(n[0] & 0x1f, nal_type::SLICE | nal_type::IDR));
        au
    }

    #[test]
    fn clean_clip_has_no_damage() {
        let aus = clip();
        assert!(aus.len() >= 60, "{} access units", aus.len());
        let mut an = Analyzer::new(None);
        let mut idrs = 0;
        for (i, au) in aus.iter().enumerate() {
            let a = an.analyze(au);
            assert!(a.damage.is_empty(), "AU {i}: {a:?}");
            assert_eq!(a.slices, 4, "AU {i}");
            assert!(!a.b_frame);
            assert!(a.resolution.is_some());
            assert!(!a.params_changed && !a.resolution_changed, "AU {i}");
            if a.idr {
                idrs += 1;
                assert!(a.has_sps_pps);
                assert_eq!(a.frame_num, Some(0));
            } else {
                assert!(!a.has_sps_pps);
                assert!(a.frame_num.is_some());
            }
        }
        assert_eq!(aus.iter().filter(|a| a.is_idr()).count(), idrs);
        assert!(idrs >= 2);
        let s = an.stats();
        assert_eq!(s.access_units, aus.len() as u64);
        assert_eq!(s.idr, idrs as u64);
        assert!(s.damage_counts().all(|(_, n)| n == 0));
    }

    #[test]
    fn damage_names() {
        let names: Vec<_> = Damage::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(
            names,
            [
                "packet_loss",
                "missing_slices",
                "frame_num_gap",
                "timestamp_jump",
                "bad_nal_header",
                "no_parameter_sets"
            ]
        );
        assert_eq!(Damage::FrameNumGap.to_string(), "frame_num_gap");
        assert!(!Damage::TimestampJump.breaks_decoding());
        assert!(Damage::PacketLoss.breaks_decoding());
    }

    #[test]
    fn keyframe_missing_its_last_two_slices() {
        let aus = clip();
        let second_idr = aus.iter().skip(1).position(|a| a.is_idr()).unwrap() + 1;
        let mut an = Analyzer::new(None);
        for au in &aus[..second_idr] {
            assert!(an.analyze(au).damage.is_empty());
        }
        let mut cut = aus[second_idr].clone();
        cut.nals.truncate(cut.nals.len() - 2);
        let a = an.analyze(&cut);
        assert!(a.idr);
        assert_eq!(a.slices, 2);
        assert_eq!(a.damage, vec![Damage::MissingSlices]);
        assert_eq!(an.stats().damage(Damage::MissingSlices), 1);

        // Keyframes learn their own layout: after two whole ones, a cut one
        // is judged against it.
        let mut an = Analyzer::new(None);
        for (i, au) in [&aus[0], &aus[second_idr], &aus[0]].into_iter().enumerate() {
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
    fn picture_missing_first_or_middle_slice() {
        let aus = clip();
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
    }

    #[test]
    fn damaged_access_unit_is_packet_loss() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        let mut lost = aus[1].clone();
        lost.damaged = true;
        // A lost FU-A middle leaves the slice truncated but its header whole.
        let s = &lost.nals[0];
        lost.nals[0] = s.slice(..s.len() / 2);
        let a = an.analyze(&lost);
        assert_eq!(a.damage, vec![Damage::PacketLoss]);
        assert_eq!(an.stats().damage(Damage::PacketLoss), 1);
    }

    #[test]
    fn skipped_picture_is_frame_num_gap() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        for au in &aus[..4] {
            an.analyze(au);
        }
        let a = an.analyze(&aus[5]);
        assert_eq!(a.damage, vec![Damage::FrameNumGap]);
        let mut next = aus[6].clone();
        next.loss_before = true;
        // Continuing from the picture that arrived: no gap, loss harmless.
        assert!(an.analyze(&next).damage.is_empty());
        let mut skip = aus[8].clone();
        skip.loss_before = true;
        assert_eq!(an.analyze(&skip).damage, vec![Damage::FrameNumGap]);
        assert_eq!(an.stats().damage(Damage::FrameNumGap), 2);
    }

    #[test]
    fn loss_before_unverifiable_picture_is_packet_loss() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        let mut p = aus[1].clone();
        p.loss_before = true;
        let a = an.analyze(&p);
        assert!(a.has(Damage::NoParameterSets));
        assert!(a.has(Damage::PacketLoss));
    }

    #[test]
    fn timestamp_jumps() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        let mut back = aus[1].clone();
        back.timestamp = aus[0].timestamp.wrapping_sub(1);
        assert_eq!(an.analyze(&back).damage, vec![Damage::TimestampJump]);
        let mut far = aus[2].clone();
        far.timestamp = back.timestamp.wrapping_add(MAX_TIMESTAMP_STEP + 1);
        assert_eq!(an.analyze(&far).damage, vec![Damage::TimestampJump]);
        // Wrapping around 2^32 is not a jump.
        let mut wrap = aus[3].clone();
        wrap.timestamp = u32::MAX - 10;
        an.analyze(&wrap);
        let mut wrapped = aus[4].clone();
        wrapped.timestamp = STEP;
        assert!(an.analyze(&wrapped).damage.is_empty());
    }

    #[test]
    fn bad_nal_headers() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        for bad in [
            vec![0x80 | 0x41, 0x9a],
            vec![0x00, 0x12],
            vec![],
            // Slice header with slice_type 30.
            vec![0x41, 0b1000_0011, 0b1111_1000],
            // Slice header cut short.
            vec![0x41, 0x00],
        ] {
            let mut au = aus[1].clone();
            au.nals.push(Bytes::from(bad.clone()));
            assert!(an.analyze(&au).has(Damage::BadNalHeader), "{bad:x?}");
        }
        // IDR and non-IDR slices mixed.
        let mut mixed = aus[0].clone();
        mixed.nals.push(aus[1].nals[1].clone());
        assert!(an.analyze(&mixed).has(Damage::BadNalHeader));
    }

    #[test]
    fn slices_need_parameter_sets() {
        let aus = clip();
        let mut an = Analyzer::new(None);
        let a = an.analyze(&slices_only(&aus[0]));
        assert_eq!(a.damage, vec![Damage::NoParameterSets]);
        assert_eq!(a.resolution, None);
        // SDP parameter sets are enough.
        let mut an = Analyzer::new(Some(&clip_params(&aus)));
        let a = an.analyze(&slices_only(&aus[0]));
        assert!(a.damage.is_empty(), "{a:?}");
        assert!(a.idr && !a.has_sps_pps && a.resolution.is_some());
        // In band but same as the SDP: not a change.
        assert!(!an.analyze(&aus[0]).params_changed);
    }

    #[test]
    fn parameter_set_change() {
        let aus = clip();
        let other = ParameterSets::from_sprop("Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==").unwrap();
        let mut an = Analyzer::new(Some(&other));
        let before = an.analyze(&AccessUnit {
            timestamp: 0,
            nals: vec![],
            damaged: false,
            loss_before: false,
        });
        assert!(before.resolution.is_some());
        let a = an.analyze(&aus[0]);
        assert!(a.params_changed);
        assert!(a.damage.is_empty(), "{a:?}");
        assert_eq!(a.resolution_changed, a.resolution != before.resolution);
        assert!(!an.analyze(&aus[1]).params_changed);
    }

    /// Writes RBSP bits for hand-made slice headers.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: u32,
    }

    impl BitWriter {
        fn bit(&mut self, b: bool) {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            if b {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
        fn u(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let len = 32 - (v + 1).leading_zeros();
            self.u(len - 1, 0);
            self.u(len, v + 1);
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                2 * v as u32 - 1
            } else {
                2 * v.unsigned_abs()
            });
        }
        /// Trailing bits, then emulation prevention; with the NAL header.
        fn nal(mut self, header: u8) -> Bytes {
            self.bit(true);
            while self.bits % 8 != 0 {
                self.bit(false);
            }
            let mut out = vec![header];
            let mut zeros = 0;
            for b in self.bytes {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            Bytes::from(out)
        }
    }

    /// A non-reference B slice (slice_type 6) using the clip's PPS 0.
    fn b_slice(params: &ParameterSets, frame_num: u32) -> Bytes {
        let sps = SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(
            &params.sps[..],
        )))
        .unwrap();
        let mut ctx = Context::new();
        ctx.put_seq_param_set(sps.clone());
        let pps = PicParameterSet::from_bits(
            &ctx,
            BitReader::new(ByteReader::skipping_h264_header(&params.pps[..])),
        )
        .unwrap();
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(6); // slice_type: B, all slices
        w.ue(u32::from(pps.pic_parameter_set_id.id()));
        w.u(u32::from(sps.log2_max_frame_num()), frame_num);
        if !matches!(sps.frame_mbs_flags, FrameMbsFlags::Frames) {
            w.bit(false); // field_pic_flag
        }
        match sps.pic_order_cnt {
            h264_reader::nal::sps::PicOrderCntType::TypeZero {
                log2_max_pic_order_cnt_lsb_minus4,
            } => {
                w.u(u32::from(log2_max_pic_order_cnt_lsb_minus4) + 4, 2);
                if pps.bottom_field_pic_order_in_frame_present_flag {
                    w.se(0);
                }
            }
            h264_reader::nal::sps::PicOrderCntType::TypeOne {
                delta_pic_order_always_zero_flag: false,
                ..
            } => {
                w.se(0);
                if pps.bottom_field_pic_order_in_frame_present_flag {
                    w.se(0);
                }
            }
            _ => {}
        }
        if pps.redundant_pic_cnt_present_flag {
            w.ue(0);
        }
        w.bit(true); // direct_spatial_mv_pred_flag
        w.bit(false); // num_ref_idx_active_override_flag
        w.bit(false); // ref_pic_list_modification_flag_l0
        w.bit(false); // ref_pic_list_modification_flag_l1
        assert_ne!(pps.weighted_bipred_idc, 1, "no pred_weight_table written");
        // nal_ref_idc 0: no dec_ref_pic_marking.
        if pps.entropy_coding_mode_flag {
            w.ue(0); // cabac_init_idc
        }
        w.se(0); // slice_qp_delta
        if pps.deblocking_filter_control_present_flag {
            w.ue(0);
            w.se(0);
            w.se(0);
        }
        // Some slice data.
        w.u(16, 0xa5a5);
        w.nal(nal_type::SLICE) // nal_ref_idc 0
    }

    #[test]
    fn b_frames() {
        let aus = clip();
        let params = clip_params(&aus);
        let mut an = Analyzer::new(None);
        an.analyze(&aus[0]);
        let p = an.analyze(&aus[1]);
        let fnum = p.frame_num.unwrap();
        let b = an.analyze(&au(
            aus[1].timestamp + STEP,
            vec![b_slice(&params, fnum + 1)],
        ));
        assert!(b.b_frame);
        assert!(b.damage.is_empty(), "{b:?}");
        assert_eq!(b.frame_num, Some(fnum + 1));
        // The next P picture takes the frame_num after the last reference
        // picture too.
        let p = an.analyze(&aus[2]);
        assert!(p.damage.is_empty(), "{p:?}");
        assert_eq!(an.stats().b_frames, 1);
        // A B slice whose frame_num skips one.
        let b = an.analyze(&au(
            aus[2].timestamp + STEP,
            vec![b_slice(&params, fnum + 4)],
        ));
        assert!(b.b_frame);
        assert_eq!(b.damage, vec![Damage::FrameNumGap]);
    }

    #[test]
    fn mutated_clip_never_panics() {
        let aus = clip();
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
                    let n = (next() % 4) as usize;
                    for _ in 0..n {
                        let i = (next() as usize) % v.len().min(24);
                        v[i] ^= 1 << (next() % 8);
                    }
                    if round == 2 {
                        v.truncate((next() as usize) % (v.len() + 1));
                    }
                    *nal = Bytes::from(v);
                }
                let _ = an.analyze(&au);
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
            let mut an = Analyzer::new(None);
            let au = au(ts, nals.into_iter().map(Bytes::from).collect());
            let a = an.analyze(&au);
            proptest::prop_assert!(a.damage.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
