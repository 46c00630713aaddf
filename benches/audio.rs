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
//! each case transcodes (default 600 s), `AUDIO_BENCH_CASE` runs only the
//! cases whose name contains it (for a profiler: `perf record`).
//!
//! The same run measures ffmpeg doing the same transcode of the same clip
//! (its AAC decoder, swresample, libopus with camgate's settings: mono,
//! 48 kHz, restricted low delay, the same complexity and bit rate, 20 ms
//! frames), one thread, as the CPU time of the child process: a reference
//! taken under the same load, since CPU time on a shared machine moves
//! with what else runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use camgate::aac::{AacFormat, AacToOpus, AudioSpecificConfig};
use rustix::time::{clock_gettime, ClockId};

/// The clip of each case as a file ffmpeg reads (the RTP capture's access
/// units are those of the ADTS file: scripts/make-aac-fixtures.sh).
const MONO_48K_ADTS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aac/sine1k_48k_mono.aac"
);
const STEREO_44K1_ADTS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aac/sine440_44k1_stereo.aac"
);
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

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// ffmpeg transcoding `clip` (`clip_seconds` long) looped until `seconds`
/// of audio went through, as camgate does; returns (CPU time, audio
/// seconds), or why it did not run.
fn ffmpeg_run(clip: &Path, clip_seconds: f64, seconds: f64) -> Result<(Duration, f64), String> {
    let loops = (seconds / clip_seconds).ceil() as u32;
    let before = children_cpu();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-threads", "1"])
        .args(["-stream_loop", &(loops - 1).to_string(), "-i"])
        .arg(clip)
        .args(["-ac", "1", "-ar", "48000", "-c:a", "libopus"])
        .args(["-application", "lowdelay", "-frame_duration"])
        .arg(camgate::aac::transcode::FRAME_MS.to_string())
        .arg("-compression_level")
        .arg(camgate::aac::transcode::COMPLEXITY.to_string())
        .arg("-b:a")
        .arg(camgate::aac::transcode::BITRATE.to_string())
        .args(["-f", "null", "-"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok((children_cpu() - before, f64::from(loops) * clip_seconds))
}

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
    let only = std::env::var("AUDIO_BENCH_CASE").unwrap_or_default();
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

    for (name, format, packets, ticks, clip) in [
        (
            "48 kHz mono (RFC 3640, fragmented)",
            &mono_format,
            &mono,
            mono_ticks,
            MONO_48K_ADTS_PATH,
        ),
        (
            "44.1 kHz stereo, mixed down and resampled to 48 kHz",
            &stereo_format,
            &stereo,
            stereo_ticks,
            STEREO_44K1_ADTS_PATH,
        ),
    ] {
        if !name.contains(only.as_str()) {
            continue;
        }
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
        let clip_seconds = f64::from(ticks) / f64::from(format.clock_rate);
        match ffmpeg_run(Path::new(clip), clip_seconds, seconds) {
            Ok((cpu, audio)) => println!(
                "  ffmpeg, the same transcode: {:.3} s CPU for {audio:.0} s of audio: {:.3} % of a core",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() / audio * 100.0
            ),
            Err(e) => println!("  ffmpeg, the same transcode: not run ({e})"),
        }
    }
}
