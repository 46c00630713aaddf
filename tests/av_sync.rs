//! Sound and picture stay together at a WebRTC viewer (issue 11: an
//! offset under 100 ms). A GStreamer camera plays a clip made at test time
//! whose picture flashes white and whose sound beeps (1 kHz) at the same
//! instants, every 2 s: H.264 and AAC at 44.1 kHz stereo, so camgate's
//! transcoder mixes down and resamples on the way to Opus. camgate pulls
//! it; a WHEP viewer made with the `webrtc` crate records the pictures,
//! the Opus packets and both tracks' RTCP sender reports. The flashes are
//! found in the pictures decoded by ffmpeg, the beeps in the Opus decoded
//! by libopus; each event is placed on the sender's wall clock through its
//! track's latest sender report, as a browser lines up audio and video,
//! and, for comparison, by when its packets arrived. camgate's sender
//! reports tie each track's RTP clock to the wall clock at the instant it
//! sends, so what is measured is how much later one path through camgate
//! (AAC decoded, Opus encoded in 20 ms frames) delivers its content than
//! the other (pictures passed through). Delaying the audio by 200 ms in
//! `egress::webrtc::opus_feed` makes the test fail (+210 ms).

mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use viewer::{in_loopback_netns, runtime, AudioRtp, SenderReportSeen, Viewer};

/// How often the clip flashes and beeps, and for how long (seconds).
const PERIOD: f64 = 2.0;
const EVENT: f64 = 0.1;
/// The largest audio/video offset allowed (issue 11).
const MAX_OFFSET: f64 = 0.100;
/// The clip's picture size: small, as only its brightness matters.
const WIDTH: usize = 160;
const HEIGHT: usize = 120;

/// Makes the clip with ffmpeg's lavfi sources: black pictures with a
/// white one (a filled box over all of it) while `mod(t, 2) < 0.1`, 25 fps,
/// H.264 Constrained Baseline with a keyframe every second; a 1 kHz sine
/// at half scale in both channels over the same instants, AAC LC 44.1 kHz
/// stereo. 40 s, more than the test watches.
fn make_clip(dir: &Path) -> PathBuf {
    require_tool("ffmpeg");
    let clip = dir.join("flash_beep.mp4");
    let on = format!("lt(mod(t\\,{PERIOD})\\,{EVENT})");
    let beep = format!("0.5*sin(2*PI*1000*t)*{on}");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "color=c=black:s={WIDTH}x{HEIGHT}:r=25:d=40,drawbox=t=fill:c=white:enable='{on}'"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("aevalsrc={beep}|{beep}:s=44100:d=40"))
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ac", "2",
        ])
        .arg(&clip)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not make the clip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    clip
}

/// The indices of the pictures of `annex_b` where the picture turns white
/// (its mean luma crosses half way up from the previous picture's), as
/// ffmpeg decodes them; also how many pictures it decoded.
fn flashes(annex_b: &[u8], dir: &Path) -> (Vec<usize>, usize) {
    let file = dir.join("viewer.h264");
    std::fs::write(&file, annex_b).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "h264", "-i"])
        .arg(&file)
        .args([
            "-fps_mode",
            "passthrough",
            "-s",
            "16x12",
            "-pix_fmt",
            "gray",
        ])
        .args(["-f", "rawvideo", "-"])
        .stderr(Stdio::piped())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decoding what the viewer received: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let luma: Vec<f64> = out
        .stdout
        .chunks_exact(16 * 12)
        .map(|p| p.iter().map(|&y| f64::from(y)).sum::<f64>() / p.len() as f64)
        .collect();
    let onsets = (1..luma.len())
        .filter(|&i| luma[i - 1] < 128.0 && luma[i] >= 128.0)
        .collect();
    (onsets, luma.len())
}

/// The Opus packets decoded and laid out by timestamp: (first timestamp,
/// 48 kHz mono samples; gaps are silence).
fn decode_opus(packets: &[AudioRtp]) -> (u32, Vec<f32>) {
    let first = packets[0].timestamp;
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut pcm = Vec::new();
    let mut frame = vec![0f32; 5760];
    for p in packets {
        let n = decoder.decode_float(&p.payload, &mut frame, false).unwrap();
        let at = p.timestamp.wrapping_sub(first) as usize;
        if pcm.len() < at + n {
            pcm.resize(at + n, 0.0);
        }
        pcm[at..at + n].copy_from_slice(&frame[..n]);
    }
    (first, pcm)
}

/// The 48 kHz timestamps where a beep starts: the first 2.5 ms window whose
/// RMS passes a third of the loudest window's, after 0.5 s below it.
fn beeps(first: u32, pcm: &[f32]) -> Vec<u32> {
    const WINDOW: usize = 120;
    let rms: Vec<f32> = pcm
        .chunks_exact(WINDOW)
        .map(|w| (w.iter().map(|s| s * s).sum::<f32>() / WINDOW as f32).sqrt())
        .collect();
    let loudest = rms.iter().cloned().fold(0.0, f32::max);
    let threshold = loudest / 3.0;
    let quiet_before = 48_000 / 2 / WINDOW;
    let mut quiet = 0;
    let mut out = Vec::new();
    for (i, &r) in rms.iter().enumerate() {
        if r >= threshold {
            if quiet >= quiet_before {
                out.push(first.wrapping_add((i * WINDOW) as u32));
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    out
}

/// The latest sender report of `ssrc` that had arrived at `at`, or the
/// first one when none had.
fn report_for(reports: &[SenderReportSeen], ssrc: u32, at: Instant) -> SenderReportSeen {
    let of_ssrc = || reports.iter().filter(|r| r.ssrc == ssrc);
    *of_ssrc()
        .rfind(|r| r.at <= at)
        .or_else(|| of_ssrc().next())
        .unwrap_or_else(|| panic!("no sender report for SSRC {ssrc:08x}: {reports:?}"))
}

/// A flash or a beep as the viewer saw it.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// The sender's wall clock through the track's sender report, seconds.
    reported: f64,
    /// From arrival times, seconds since the test's `origin`.
    arrived: f64,
}

#[test]
fn audio_and_video_stay_within_100_ms_at_a_webrtc_viewer() {
    if in_loopback_netns("audio_and_video_stay_within_100_ms_at_a_webrtc_viewer") {
        return;
    }
    let dir = temp_dir();
    let clip = make_clip(dir.path());
    let (http, gst_port) = (free_tcp_port(), free_tcp_port());
    let _gst = spawn_gst_server_with(
        dir.path(),
        gst_port,
        "viewer",
        "s3cr3t-pw",
        &["--mp4", clip.to_str().unwrap(), "--audio", "aac"],
    );
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n\
         [[camera]]\nid = \"cam\"\nurl = \"rtsp://viewer:s3cr3t-pw@127.0.0.1:{gst_port}/test\"\n"
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    let cam = wait_state(http, "cam", "playing", Duration::from_secs(20));
    assert_eq!(cam["audio"], "MPEG4-GENERIC/44100", "{cam}");

    let origin = Instant::now();
    let secs = |at: Instant| at.duration_since(origin).as_secs_f64();
    let r = runtime().block_on(async {
        let v = Viewer::connect(http, "cam", "").await;
        assert!(v.answer.contains("opus/48000/2"), "{}", v.answer);
        v.wait_frames(1, Duration::from_secs(10)).await;
        // Five flash/beep pairs after the start.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let r = v.received.clone();
        v.delete().await;
        r
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());

    // The start (the cached GOP replayed at once, before any sound) is left
    // out: events from 1.5 s after the first picture.
    let first_picture = r.first_frame_at.lock().unwrap().expect("no picture");
    let from = first_picture + Duration::from_millis(1500);
    let reports = r.sender_reports.lock().unwrap().clone();

    let video_ssrc = r.video_ssrc.load(std::sync::atomic::Ordering::Relaxed) as u32;
    let annex_b = r.annex_b.lock().unwrap().clone();
    let timestamps = r.timestamps.lock().unwrap().clone();
    let arrivals = r.arrivals.lock().unwrap().clone();
    let (flash_pictures, decoded) = flashes(&annex_b, dir.path());
    assert_eq!(timestamps.len(), arrivals.len());
    assert_eq!(decoded, timestamps.len(), "ffmpeg decoded every picture");
    let flashes: Vec<Event> = flash_pictures
        .iter()
        .filter(|&&i| arrivals[i] >= from)
        .map(|&i| Event {
            reported: report_for(&reports, video_ssrc, arrivals[i])
                .wall_clock(timestamps[i], 90_000),
            arrived: secs(arrivals[i]),
        })
        .collect();

    let audio_ssrc = r.audio_ssrc.load(std::sync::atomic::Ordering::Relaxed) as u32;
    let packets = r.audio.lock().unwrap().clone();
    assert!(packets.len() > 400, "{} audio packets", packets.len());
    let (first, pcm) = decode_opus(&packets);
    let beeps: Vec<Event> = beeps(first, &pcm)
        .into_iter()
        .filter_map(|onset| {
            // The packet holding the onset: it arrived once its 20 ms were
            // over, so the onset was that much before its end.
            let p = packets
                .iter()
                .find(|p| onset.wrapping_sub(p.timestamp) < 960)?;
            let end = p.timestamp.wrapping_add(960);
            (p.at >= from).then(|| Event {
                reported: report_for(&reports, audio_ssrc, p.at).wall_clock(onset, 48_000),
                arrived: secs(p.at) - f64::from(end.wrapping_sub(onset)) / 48_000.0,
            })
        })
        .collect();

    // Each flash with the beep nearest to it on the sender's clock (events
    // are 2 s apart, so an error of a whole period would go unseen; any
    // other beyond 100 ms fails).
    let mut pairs = Vec::new();
    for f in &flashes {
        let nearest = beeps.iter().min_by(|a, b| {
            (a.reported - f.reported)
                .abs()
                .total_cmp(&(b.reported - f.reported).abs())
        });
        if let Some(b) = nearest.filter(|b| (b.reported - f.reported).abs() < PERIOD / 2.0) {
            pairs.push((*f, *b));
        }
    }
    let mut table = String::new();
    for (f, b) in &pairs {
        writeln!(
            table,
            "  flash at {:7.3} s, beep {:+6.1} ms by sender reports, {:+6.1} ms by arrival",
            f.arrived,
            (b.reported - f.reported) * 1000.0,
            (b.arrived - f.arrived) * 1000.0
        )
        .unwrap();
    }
    eprintln!(
        "audio minus video at the viewer ({} flashes, {} beeps, {} sender reports):\n{table}",
        flashes.len(),
        beeps.len(),
        reports.len()
    );
    assert!(
        pairs.len() >= 3,
        "{} flash/beep pairs (flashes {flashes:?}, beeps {beeps:?})",
        pairs.len()
    );
    for (f, b) in &pairs {
        let offset = b.reported - f.reported;
        assert!(
            offset.abs() < MAX_OFFSET,
            "audio {:+.1} ms from video at the viewer (by sender reports):\n{table}",
            offset * 1000.0
        );
    }
}
