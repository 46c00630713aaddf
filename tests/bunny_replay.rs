//! Replays a recorded RTSP/TCP session (Big Buck Bunny from a Wowza server)
//! through the RTP parser and the H.264 depacketizer, and cross-checks the
//! access units against `retina`'s depacketizer as an independent oracle.
//!
//! Note: in this recording the video (PT 97) is on interleaved channel 2 and
//! AAC (PT 96) on channel 0, as `bunny_describe.txt` lists audio first.

use std::num::NonZeroU32;

use bytes::Bytes;
use camgate::h264::{nal_type, AccessUnit, Depacketizer, Packetizer, ParameterSets};
use camgate::rtp::RtpPacket;

const BUNNY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/camera-rtsp/bunny.rtsp"
));
const SPROP: &str = "Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==";
const FMTP: &str = "packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==";
const VIDEO_CHANNEL: u8 = 2;
const VIDEO_PT: u8 = 97;

/// Interleaved frames `$ channel len16 data` as (channel, data).
fn frames(mut rest: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        assert!(
            rest.len() >= 4 && rest[0] == b'$',
            "bad interleaved framing"
        );
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        out.push((rest[1], &rest[4..4 + len]));
        rest = &rest[4 + len..];
    }
    out
}

fn video_packets() -> Vec<RtpPacket> {
    let bunny = Bytes::from_static(BUNNY);
    let base = BUNNY.as_ptr() as usize;
    frames(BUNNY)
        .into_iter()
        .filter(|(ch, _)| *ch == VIDEO_CHANNEL)
        .map(|(_, data)| {
            let start = data.as_ptr() as usize - base;
            let p = RtpPacket::parse(bunny.slice(start..start + data.len())).unwrap();
            assert_eq!(p.payload_type, VIDEO_PT);
            p
        })
        .collect()
}

fn depacketize(pkts: &[RtpPacket]) -> (Vec<AccessUnit>, Depacketizer) {
    let mut d = Depacketizer::new(Some(ParameterSets::from_sprop(SPROP).unwrap()));
    let mut aus = Vec::new();
    for p in pkts {
        d.push(p);
        d.check_invariants();
        while let Some(au) = d.pull() {
            aus.push(au);
        }
    }
    (aus, d)
}

/// Access units from retina, as NAL lists (its AVCC output split).
fn retina_access_units(pkts: &[RtpPacket]) -> Vec<(u32, bool, Vec<Vec<u8>>)> {
    use retina::codec::{CodecItem, FrameFormat};
    let mut d =
        retina::codec::Depacketizer::new("video", "h264", 90_000, None, Some(FMTP)).unwrap();
    d.set_frame_format(FrameFormat::MP4);
    let mut buf = retina::testutil::DepacketizeBuf::new(1 << 16);
    let clock = NonZeroU32::new(90_000).unwrap();
    let mut out = Vec::new();
    for p in pkts {
        let meta = retina::rtp::PacketMeta::from_received(
            &retina::rtp::ReceivedPacketBuilder {
                ctx: retina::PacketContext::dummy(),
                stream_id: 0,
                sequence_number: p.sequence,
                timestamp: retina::Timestamp::new(i64::from(p.timestamp), clock, 0).unwrap(),
                payload_type: p.payload_type,
                ssrc: p.ssrc,
                mark: p.marker,
                loss: 0,
            }
            .build(p.payload().iter().copied())
            .unwrap(),
        );
        buf.push(&mut d, meta, &p.payload()).unwrap();
        while let Some(item) = d.pull() {
            if let CodecItem::VideoFrame(f) = item.unwrap() {
                out.push((
                    f.timestamp().timestamp() as u32,
                    f.is_random_access_point(),
                    avcc_nals(f.data()),
                ));
            }
        }
    }
    out
}

fn avcc_nals(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    while !data.is_empty() {
        let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        nals.push(data[4..4 + len].to_vec());
        data = &data[4 + len..];
    }
    nals
}

#[test]
fn bunny_access_units() {
    let pkts = video_packets();
    assert_eq!(pkts.len(), 269);
    let (aus, d) = depacketize(&pkts);
    assert_eq!(aus.len(), 245);
    assert!(aus.iter().all(|au| !au.damaged && !au.loss_before));
    let idrs: Vec<usize> = aus
        .iter()
        .enumerate()
        .filter(|(_, au)| au.is_idr())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(idrs.first(), Some(&0), "the stream starts with an IDR");
    assert_eq!(idrs, vec![0, 48, 96, 144, 192, 240]);
    for (i, au) in aus.iter().enumerate() {
        assert!(au.nals.iter().all(|n| !n.is_empty() && n[0] & 0x80 == 0));
        assert!(au.len_bytes() > 0 && au.len_bytes() < 10_000);
        let kinds: Vec<u8> = au.nals.iter().map(|n| n[0] & 0x1f).collect();
        // IDR pictures carry SPS+PPS in band (the first also an x264 SEI);
        // the others are one non-IDR slice.
        let want = match i {
            0 => vec![nal_type::SPS, nal_type::PPS, nal_type::SEI, nal_type::IDR],
            _ if au.is_idr() => vec![nal_type::SPS, nal_type::PPS, nal_type::IDR],
            _ => vec![nal_type::SLICE],
        };
        assert_eq!(kinds, want, "access unit {i}");
    }
    // Timestamps strictly increase (no B-frames in this baseline stream).
    assert!(aus.windows(2).all(|w| w[1].timestamp > w[0].timestamp));
    // In-band parameter sets match the SDP's.
    assert_eq!(
        d.parameter_sets(),
        Some(&ParameterSets::from_sprop(SPROP).unwrap())
    );
}

#[test]
fn bunny_matches_retina() {
    let pkts = video_packets();
    let (ours, _) = depacketize(&pkts);
    let theirs = retina_access_units(&pkts);
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, (ts, rap, nals))) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.timestamp, *ts, "access unit {i}");
        assert_eq!(a.is_idr(), *rap, "access unit {i}");
        // With `FrameFormat::MP4` retina moves in-band SPS/PPS out of the
        // frame data into its parameters, so compare without them.
        let a_nals: Vec<Vec<u8>> = a
            .nals
            .iter()
            .filter(|n| !matches!(n[0] & 0x1f, nal_type::SPS | nal_type::PPS))
            .map(|n| n.to_vec())
            .collect();
        assert_eq!(&a_nals, nals, "access unit {i}");
    }
}

#[test]
fn bunny_repacketizes_losslessly() {
    let pkts = video_packets();
    let (aus, _) = depacketize(&pkts);
    let mut p = Packetizer::new(1200);
    let mut d = Depacketizer::new(None);
    let mut payloads = Vec::new();
    let mut seq = 0u16;
    let mut again = Vec::new();
    for au in &aus {
        payloads.clear();
        p.packetize(au, None, &mut payloads);
        for pl in &payloads {
            let mut raw = Vec::new();
            RtpPacket::write(&mut raw, pl.marker, 96, seq, au.timestamp, 7, &pl.data);
            seq = seq.wrapping_add(1);
            d.push(&RtpPacket::parse(Bytes::from(raw)).unwrap());
            while let Some(au) = d.pull() {
                again.push(au);
            }
        }
    }
    assert_eq!(again, aus);
}
