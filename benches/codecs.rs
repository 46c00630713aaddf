//! H.265 against H.264 per picture: depacketize + analyze (the ingest
//! work before the repair gate) on twin clips from
//! `tests/fixtures/h265/` (`p.h265`, `p.h264`: 640x360, 50 pictures, 4
//! slices per picture, one IRAP/IDR every 25, parameter sets before each,
//! made by `scripts/make-h265-fixtures.sh` with the same ffmpeg settings).
//! Both clips are packetized once at 1200 bytes; each iteration feeds all
//! packets through a fresh depacketizer and analyzer. Criterion reports
//! time per picture (throughput in elements = pictures).

mod common;

use bytes::Bytes;
use camgate::rtp::RtpPacket;
use common::access_units;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const H265: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/h265/p.h265"
));
const H264: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/h265/p.h264"
));
/// RTP timestamp step (25 fps at 90 kHz).
const STEP: u32 = 3600;

/// RTP packets of `payloads` per access unit, sequence numbers in order.
fn rtp(per_au: Vec<(u32, Vec<camgate::h264::packetizer::Payload>)>) -> Vec<RtpPacket> {
    let mut seq = 0u16;
    let mut out = Vec::new();
    for (ts, payloads) in per_au {
        for p in payloads {
            let mut raw = Vec::new();
            RtpPacket::write(&mut raw, p.marker, 96, seq, ts, 1, &p.data);
            seq = seq.wrapping_add(1);
            out.push(RtpPacket::parse(Bytes::from(raw)).expect("written packet parses"));
        }
    }
    out
}

fn h265_packets() -> (usize, Vec<RtpPacket>) {
    let aus = access_units(H265, STEP, 2, |n| {
        n.first().is_some_and(|b| (b >> 1) & 0x3f < 32)
    });
    let mut p = camgate::h265::Packetizer::new(1200);
    let per_au = aus
        .iter()
        .map(|au| {
            let mut out = Vec::new();
            p.packetize(au, None, &mut out);
            (au.timestamp, out)
        })
        .collect();
    (aus.len(), rtp(per_au))
}

fn h264_packets() -> (usize, Vec<RtpPacket>) {
    let aus = access_units(H264, STEP, 1, |n| {
        n.first().is_some_and(|b| matches!(b & 0x1f, 1 | 5))
    });
    let mut p = camgate::h264::Packetizer::new(1200);
    let per_au = aus
        .iter()
        .map(|au| {
            let mut out = Vec::new();
            p.packetize(au, None, &mut out);
            (au.timestamp, out)
        })
        .collect();
    (aus.len(), rtp(per_au))
}

/// Depacketizes and analyzes every packet; returns (pictures, damaged).
fn h265_ingest(pkts: &[RtpPacket]) -> (usize, usize) {
    let mut d = camgate::h265::Depacketizer::new(None);
    let mut an = camgate::h265::analyzer::Analyzer::new(None);
    let (mut n, mut bad) = (0, 0);
    for p in pkts {
        d.push(p);
        while let Some(au) = d.pull() {
            n += 1;
            bad += usize::from(!an.analyze(&au).damage.is_empty());
        }
    }
    d.flush();
    while let Some(au) = d.pull() {
        n += 1;
        bad += usize::from(!an.analyze(&au).damage.is_empty());
    }
    (n, bad)
}

fn h264_ingest(pkts: &[RtpPacket]) -> (usize, usize) {
    let mut d = camgate::h264::Depacketizer::new(None);
    let mut an = camgate::h264::analyzer::Analyzer::new(None);
    let (mut n, mut bad) = (0, 0);
    for p in pkts {
        d.push(p);
        while let Some(au) = d.pull() {
            n += 1;
            bad += usize::from(!an.analyze(&au).damage.is_empty());
        }
    }
    d.flush();
    while let Some(au) = d.pull() {
        n += 1;
        bad += usize::from(!an.analyze(&au).damage.is_empty());
    }
    (n, bad)
}

fn bench(c: &mut Criterion) {
    let (n265, p265) = h265_packets();
    let (n264, p264) = h264_packets();
    assert_eq!(n265, n264, "twin clips");
    // Both clean and whole, or the comparison measures error paths.
    assert_eq!(h265_ingest(&p265), (n265, 0));
    assert_eq!(h264_ingest(&p264), (n264, 0));
    eprintln!(
        "pictures: {n265}; RTP packets: H.265 {} ({} bytes), H.264 {} ({} bytes)",
        p265.len(),
        p265.iter().map(|p| p.raw.len()).sum::<usize>(),
        p264.len(),
        p264.iter().map(|p| p.raw.len()).sum::<usize>()
    );
    let mut g = c.benchmark_group("ingest_per_picture");
    g.throughput(Throughput::Elements(n265 as u64));
    g.bench_function("h265_depacketize_analyze", |b| {
        b.iter(|| h265_ingest(std::hint::black_box(&p265)))
    });
    g.bench_function("h264_depacketize_analyze", |b| {
        b.iter(|| h264_ingest(std::hint::black_box(&p264)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
