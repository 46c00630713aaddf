//! Throughput of the H.264 depacketizer on the Big Buck Bunny recording:
//! camgate depacketize, camgate depacketize + packetize, and retina's
//! depacketizer on the same packets, in one run so their ratio is fair.

use std::num::NonZeroU32;

use bytes::Bytes;
use camgate::h264::{Depacketizer, Packetizer, ParameterSets};
use camgate::rtp::RtpPacket;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BUNNY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/camera-rtsp/bunny.rtsp"
));
const SPROP: &str = "Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==";
const FMTP: &str = "packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==";
/// Interleaved channel of the video RTP stream in this recording.
const VIDEO_CHANNEL: u8 = 2;

/// The video RTP packets, parsed once, sharing the recording's buffer.
fn video_packets() -> Vec<RtpPacket> {
    let all = Bytes::from_static(BUNNY);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= BUNNY.len() {
        let len = usize::from(u16::from_be_bytes([BUNNY[pos + 2], BUNNY[pos + 3]]));
        if BUNNY[pos + 1] == VIDEO_CHANNEL {
            out.push(RtpPacket::parse(all.slice(pos + 4..pos + 4 + len)).expect("valid RTP"));
        }
        pos += 4 + len;
    }
    out
}

fn camgate_depacketize(pkts: &[RtpPacket], params: &ParameterSets) -> usize {
    let mut d = Depacketizer::new(Some(params.clone()));
    let mut n = 0;
    for p in pkts {
        d.push(p);
        while let Some(au) = d.pull() {
            n += au.len_bytes();
        }
    }
    n
}

fn camgate_round_trip(
    pkts: &[RtpPacket],
    params: &ParameterSets,
    out: &mut Vec<camgate::h264::packetizer::Payload>,
) -> usize {
    let mut d = Depacketizer::new(Some(params.clone()));
    let mut p = Packetizer::new(1200);
    let mut n = 0;
    for pkt in pkts {
        d.push(pkt);
        while let Some(au) = d.pull() {
            out.clear();
            p.packetize(&au, d.parameter_sets(), out);
            n += out.iter().map(|x| x.data.len()).sum::<usize>();
        }
    }
    n
}

fn retina_depacketize(pkts: &[RtpPacket], buf: &mut retina::testutil::DepacketizeBuf) -> usize {
    use retina::codec::CodecItem;
    let mut d = retina::codec::Depacketizer::new("video", "h264", 90_000, None, Some(FMTP))
        .expect("retina h264");
    let clock = NonZeroU32::new(90_000).expect("nonzero");
    let mut n = 0;
    for p in pkts {
        let meta = retina::rtp::PacketMeta {
            ctx: retina::PacketContext::dummy(),
            stream_id: 0,
            timestamp: retina::Timestamp::new(i64::from(p.timestamp), clock, 0).expect("timestamp"),
            sequence_number: p.sequence,
            ssrc: p.ssrc,
            mark: p.marker,
            loss: 0,
        };
        buf.push(&mut d, meta, p.payload_slice()).expect("push");
        while let Some(item) = d.pull() {
            if let Ok(CodecItem::VideoFrame(f)) = item {
                n += f.data().len();
            }
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let pkts = video_packets();
    let params = ParameterSets::from_sprop(SPROP).expect("sprop");
    let bytes: u64 = pkts.iter().map(|p| p.raw.len() as u64).sum();
    let mut g = c.benchmark_group("depacketize");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("camgate", |b| {
        b.iter(|| camgate_depacketize(std::hint::black_box(&pkts), &params))
    });
    let mut out = Vec::new();
    g.bench_function("camgate_repacketize", |b| {
        b.iter(|| camgate_round_trip(std::hint::black_box(&pkts), &params, &mut out))
    });
    let mut buf = retina::testutil::DepacketizeBuf::new(1 << 16);
    g.bench_function("retina", |b| {
        b.iter(|| retina_depacketize(std::hint::black_box(&pkts), &mut buf))
    });
    // retina's fixed per-iteration cost (its constructor parses the SPS),
    // to subtract when comparing per-packet work.
    g.bench_function("retina_new_only", |b| {
        b.iter(|| {
            retina::codec::Depacketizer::new(
                "video",
                "h264",
                90_000,
                None,
                Some(std::hint::black_box(FMTP)),
            )
            .is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
