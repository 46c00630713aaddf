//! CPU of AAC to Opus per camera: the work of one camera's Opus feed
//! (`egress::webrtc::opus_feed`) for its WebRTC viewers, that is RTP
//! payloads depacketized (RFC 3640), AAC decoded (symphonia), resampled
//! when needed (rubato) and encoded to 20 ms Opus frames (libopus), on the
//! clips of `tests/fixtures/aac/` (GStreamer's voaacenc, made by
//! `scripts/make-aac-fixtures.sh`), looped with continuous timestamps.
//!
//! Reports the thread's CPU time over the audio's duration: the share of
//! one core a camera's audio stream costs (target: under 0.5 %). Run with
//! `cargo bench --bench audio`; `AUDIO_BENCH_SECONDS` sets how much audio
//! each case transcodes (default 600 s).

use std::time::Duration;

use bytes::Bytes;
use camgate::aac::{AacFormat, AacToOpus, AudioSpecificConfig};
use rustix::time::{clock_gettime, ClockId};

const MONO_48K_RTP: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aac/mp4g_48k_mono.rtp"
));
const STEREO_44K1_ADTS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aac/sine440_44k1_stereo.aac"
));

/// One RTP packet as the hub carries it: payload, timestamp, marker.
type Packet = (Bytes, u32, bool);

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The packets of an RFC 4571 capture (a 16-bit length before each).
fn rfc4571(data: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (raw, next) = tail.split_at(len);
        let p = camgate::rtp::RtpPacket::parse(Bytes::copy_from_slice(raw)).unwrap();
        out.push((p.payload(), p.timestamp, p.marker));
        rest = next;
    }
    out
}

/// The access units of an ADTS file as AAC-hbr packets (one access unit
/// each, as most cameras send them), and the config in hex.
fn adts_to_hbr(data: &[u8]) -> (Vec<Packet>, String) {
    let mut out = Vec::new();
    let mut config = String::new();
    let mut i = 0;
    let mut ts = 0u32;
    while i + 7 <= data.len() {
        let h = &data[i..i + 7];
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let header = if h[1] & 1 == 1 { 7 } else { 9 };
        let au = &data[i + header..i + len];
        if config.is_empty() {
            let (profile, rate, channels) = (
                (h[2] >> 6) + 1,
                (h[2] >> 2) & 0xf,
                ((h[2] & 1) << 2) | (h[3] >> 6),
            );
            let asc = [
                (profile << 3) | (rate >> 1),
                ((rate & 1) << 7) | (channels << 3),
            ];
            AudioSpecificConfig::parse(&asc).unwrap();
            config = format!("{:02x}{:02x}", asc[0], asc[1]);
        }
        let mut p = vec![0, 16];
        p.extend_from_slice(&((au.len() as u16) << 3).to_be_bytes());
        p.extend_from_slice(au);
        out.push((Bytes::from(p), ts, true));
        ts = ts.wrapping_add(1024);
        i += len;
    }
    (out, config)
}

/// Transcodes `packets` looped until `seconds` of audio went through;
/// returns (CPU time, audio seconds, Opus frames).
fn run(
    format: &AacFormat,
    packets: &[Packet],
    clip_ticks: u32,
    seconds: f64,
) -> (Duration, f64, u64) {
    let mut p = AacToOpus::new(format.clone());
    let clip_seconds = f64::from(clip_ticks) / f64::from(format.clock_rate);
    let loops = (seconds / clip_seconds).ceil() as u32;
    let mut frames = 0u64;
    let start = thread_cpu();
    for k in 0..loops {
        let shift = k.wrapping_mul(clip_ticks);
        for (payload, ts, marker) in packets {
            p.push(payload, ts.wrapping_add(shift), *marker, 1);
            while p.poll().is_some() {
                frames += 1;
            }
        }
    }
    (
        thread_cpu() - start,
        f64::from(loops) * clip_seconds,
        frames,
    )
}

fn main() {
    let seconds: f64 = std::env::var("AUDIO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "AAC to Opus, one camera's audio stream ({} cores, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let mono = rfc4571(MONO_48K_RTP);
    // The capture's clip length: its timestamps span 94 access units.
    let span = mono.last().unwrap().1.wrapping_sub(mono[0].1);
    let mono_ticks = (span + 1024) / 1024 * 1024;
    let mono_format = AacFormat::from_sdp(
        "MPEG4-GENERIC",
        48_000,
        Some("mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188"),
    )
    .unwrap();
    let (stereo, config) = adts_to_hbr(STEREO_44K1_ADTS);
    let stereo_ticks = stereo.len() as u32 * 1024;
    let stereo_format = AacFormat::from_sdp(
        "MPEG4-GENERIC",
        44_100,
        Some(&format!("mode=AAC-hbr;config={config}")),
    )
    .unwrap();

    for (name, format, packets, ticks) in [
        (
            "48 kHz mono (RFC 3640, fragmented)",
            &mono_format,
            &mono,
            mono_ticks,
        ),
        (
            "44.1 kHz stereo, resampled to 48 kHz",
            &stereo_format,
            &stereo,
            stereo_ticks,
        ),
    ] {
        // Warm up (page faults, the FFT plans), then measure.
        run(format, packets, ticks, 10.0);
        let (cpu, audio, frames) = run(format, packets, ticks, seconds);
        let share = cpu.as_secs_f64() / audio * 100.0;
        println!(
            "{name}: {:.3} s CPU for {audio:.0} s of audio ({frames} Opus frames): {share:.3} % of a core",
            cpu.as_secs_f64()
        );
        assert!(
            frames as f64 > audio * 45.0,
            "{frames} frames for {audio} s"
        );
    }
}
