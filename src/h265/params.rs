//! What the analyzer reads from H.265 parameter sets (H.265 7.3.2): the
//! VPS id, the SPS up to the coding block sizes (picture size in CTBs,
//! conformance window), the PPS up to `tiles_enabled_flag`, each with the
//! ranges of section 7.4. Why by hand and not with an HEVC crate: see the
//! module doc of [`super`].

use h264_reader::rbsp::BitRead;

use super::rbsp_reader;

/// Largest picture side accepted from an SPS, in luma samples: level 6.2
/// allows `sqrt(8 * MaxLumaPs)` = 16 888.
const MAX_PICTURE_SIDE: u32 = 16_888;

/// The SPS fields the analysis needs, read once when the SPS arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpsFacts {
    /// `sps_video_parameter_set_id`.
    pub(crate) vps_id: u8,
    /// `PicSizeInCtbsY`.
    pub(crate) pic_size_in_ctbs: u32,
    /// `Ceil(Log2(PicSizeInCtbsY))`: bits of `slice_segment_address`.
    pub(crate) address_bits: u32,
    /// Pixel size after the conformance window, if it is consistent.
    pub(crate) resolution: Option<(u32, u32)>,
}

/// The PPS fields the slice segment header needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PpsFacts {
    /// `pps_seq_parameter_set_id`.
    pub(crate) sps_id: u8,
    /// `dependent_slice_segments_enabled_flag`.
    pub(crate) dependent_slice_segments: bool,
    /// `num_extra_slice_header_bits`.
    pub(crate) extra_slice_header_bits: u32,
    /// `tiles_enabled_flag`: slice segments follow tile scan, so their
    /// raster addresses need not increase.
    pub(crate) tiles: bool,
}

/// Reads an SPS (H.265 7.3.2.2.1) up to the coding block sizes:
/// `(sps_seq_parameter_set_id, facts)`, `None` when it is cut short or a
/// value is out of its 7.4.3.2 range.
pub(crate) fn parse_sps(nal: &[u8]) -> Option<(u8, SpsFacts)> {
    let mut r = rbsp_reader(nal);
    let vps_id: u8 = r.read(4, "sps_video_parameter_set_id").ok()?;
    let max_sub_layers_minus1: usize = r.read::<u8>(3, "sps_max_sub_layers_minus1").ok()?.into();
    if max_sub_layers_minus1 > 6 {
        return None;
    }
    r.skip(1, "sps_temporal_id_nesting_flag").ok()?;
    // profile_tier_level(1, sps_max_sub_layers_minus1) (7.3.3).
    r.skip(96, "general profile, tier and level").ok()?;
    let mut sub_layer = [(false, false); 6];
    for s in sub_layer.iter_mut().take(max_sub_layers_minus1) {
        *s = (
            r.read_bool("sub_layer_profile_present_flag").ok()?,
            r.read_bool("sub_layer_level_present_flag").ok()?,
        );
    }
    if max_sub_layers_minus1 > 0 {
        let reserved = 2 * (8 - max_sub_layers_minus1) as u32;
        r.skip(reserved, "reserved_zero_2bits").ok()?;
    }
    for &(profile, level) in sub_layer.iter().take(max_sub_layers_minus1) {
        if profile {
            r.skip(88, "sub-layer profile").ok()?;
        }
        if level {
            r.skip(8, "sub_layer_level_idc").ok()?;
        }
    }
    let id = r.read_ue("sps_seq_parameter_set_id").ok()?;
    let chroma_format_idc = r.read_ue("chroma_format_idc").ok()?;
    if id > 15 || chroma_format_idc > 3 {
        return None;
    }
    if chroma_format_idc == 3 {
        r.skip(1, "separate_colour_plane_flag").ok()?;
    }
    let width = r.read_ue("pic_width_in_luma_samples").ok()?;
    let height = r.read_ue("pic_height_in_luma_samples").ok()?;
    if !(1..=MAX_PICTURE_SIDE).contains(&width) || !(1..=MAX_PICTURE_SIDE).contains(&height) {
        return None;
    }
    let mut window = [0u32; 4];
    if r.read_bool("conformance_window_flag").ok()? {
        for w in &mut window {
            *w = r.read_ue("conf_win_offset").ok()?;
        }
    }
    let bit_depth_luma_minus8 = r.read_ue("bit_depth_luma_minus8").ok()?;
    let bit_depth_chroma_minus8 = r.read_ue("bit_depth_chroma_minus8").ok()?;
    let log2_max_poc_lsb_minus4 = r.read_ue("log2_max_pic_order_cnt_lsb_minus4").ok()?;
    if bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 || log2_max_poc_lsb_minus4 > 12 {
        return None;
    }
    let all_sub_layers = r
        .read_bool("sps_sub_layer_ordering_info_present_flag")
        .ok()?;
    let ordering = if all_sub_layers {
        max_sub_layers_minus1 + 1
    } else {
        1
    };
    for _ in 0..ordering {
        r.read_ue("sps_max_dec_pic_buffering_minus1").ok()?;
        r.read_ue("sps_max_num_reorder_pics").ok()?;
        r.read_ue("sps_max_latency_increase_plus1").ok()?;
    }
    let min_cb_log2 = r.read_ue("log2_min_luma_coding_block_size_minus3").ok()?;
    let diff = r.read_ue("log2_diff_max_min_luma_coding_block_size").ok()?;
    // CtbLog2SizeY is 4..=6 (7.4.3.2.1); MinCbLog2SizeY at least 3.
    let ctb_log2 = min_cb_log2.checked_add(3)?.checked_add(diff)?;
    if !(4..=6).contains(&ctb_log2) {
        return None;
    }
    let ctbs = |samples: u32| samples.div_ceil(1 << ctb_log2);
    let pic_size_in_ctbs = ctbs(width) * ctbs(height);
    let address_bits = u32::BITS - (pic_size_in_ctbs - 1).leading_zeros();
    let (sub_width, sub_height) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop = |side: u32, a: u32, b: u32, sub: u32| {
        let cut = (u64::from(a) + u64::from(b)) * u64::from(sub);
        u64::from(side)
            .checked_sub(cut)
            .filter(|&s| s > 0)
            .and_then(|s| u32::try_from(s).ok())
    };
    let resolution = crop(width, window[0], window[1], sub_width)
        .zip(crop(height, window[2], window[3], sub_height));
    let id = u8::try_from(id).ok()?;
    Some((
        id,
        SpsFacts {
            vps_id,
            pic_size_in_ctbs,
            address_bits,
            resolution,
        },
    ))
}

/// Reads a PPS (H.265 7.3.2.3.1) up to `tiles_enabled_flag`:
/// `(pps_pic_parameter_set_id, facts)`, `None` when cut short or out of
/// range.
pub(crate) fn parse_pps(nal: &[u8]) -> Option<(u8, PpsFacts)> {
    let mut r = rbsp_reader(nal);
    let id = r.read_ue("pps_pic_parameter_set_id").ok()?;
    let sps_id = r.read_ue("pps_seq_parameter_set_id").ok()?;
    if id > 63 || sps_id > 15 {
        return None;
    }
    let dependent_slice_segments = r.read_bool("dependent_slice_segments_enabled_flag").ok()?;
    r.skip(1, "output_flag_present_flag").ok()?;
    let extra_slice_header_bits = r.read(3, "num_extra_slice_header_bits").ok()?;
    r.skip(2, "sign_data_hiding_enabled_flag, cabac_init_present_flag")
        .ok()?;
    r.read_ue("num_ref_idx_l0_default_active_minus1").ok()?;
    r.read_ue("num_ref_idx_l1_default_active_minus1").ok()?;
    r.read_se("init_qp_minus26").ok()?;
    r.skip(
        2,
        "constrained_intra_pred_flag, transform_skip_enabled_flag",
    )
    .ok()?;
    if r.read_bool("cu_qp_delta_enabled_flag").ok()? {
        r.read_ue("diff_cu_qp_delta_depth").ok()?;
    }
    r.read_se("pps_cb_qp_offset").ok()?;
    r.read_se("pps_cr_qp_offset").ok()?;
    r.skip(
        4,
        "chroma qp offsets, weighted prediction, transquant bypass",
    )
    .ok()?;
    let tiles = r.read_bool("tiles_enabled_flag").ok()?;
    let facts = PpsFacts {
        sps_id: u8::try_from(sps_id).ok()?,
        dependent_slice_segments,
        extra_slice_header_bits,
        tiles,
    };
    Some((u8::try_from(id).ok()?, facts))
}

/// `vps_video_parameter_set_id` of a VPS.
pub(crate) fn parse_vps(nal: &[u8]) -> Option<u8> {
    rbsp_reader(nal).read(4, "vps_video_parameter_set_id").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h265::tests::{clip, clip_params};

    #[test]
    fn sps_facts() {
        let aus = clip("p.h265");
        let p = clip_params(&aus);
        let (id, f) = parse_sps(&p.sps).unwrap();
        assert_eq!(id, 0);
        // 640x360 with 64x64 CTBs: 10 x 6 = 60, addressed in 6 bits.
        assert_eq!((f.pic_size_in_ctbs, f.address_bits), (60, 6));
        assert_eq!(f.resolution, Some((640, 360)));
        let (pps_id, pf) = parse_pps(&p.pps).unwrap();
        assert_eq!((pps_id, pf.sps_id, pf.tiles), (0, 0, false));
        assert_eq!(parse_vps(&p.vps), Some(0));
        for n in 0..p.sps.len() {
            // Any prefix short of the coding block sizes fails cleanly.
            let _ = parse_sps(&p.sps[..n]);
        }
        assert_eq!(parse_sps(&p.sps[..8]), None);
    }
}
