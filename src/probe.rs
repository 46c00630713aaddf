//! `camgate probe URL`: connect to one camera and report what an installer
//! needs to know about it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::camera::codec::VideoParams;
use crate::camera::session::{run_session, Carrier, SessionContext, SessionEnd, SessionParams};
use crate::camera::VideoFrame;
use crate::camera::{CameraState, CameraStats, CameraStatus, Hub, MediaEvent};
use crate::codec_info::parse_sps;
use crate::redact::redact_url;

/// What was measured.
#[derive(Debug, Default, Clone)]
pub struct ProbeReport {
    /// Camera `Server` header or SDP tool.
    pub server: Option<String>,
    /// `m=` lines of the camera's SDP, e.g. `video H264`.
    pub streams: Vec<String>,
    /// Video description from the SPS, e.g. `H264 640x360 Main 3.0`.
    pub video: Option<String>,
    /// Audio passed through, if any.
    pub audio: Option<String>,
    /// Transport used.
    pub transport: Option<&'static str>,
    /// Frames per second from RTP timestamps.
    pub fps: Option<f64>,
    /// Frames between the last two keyframes.
    pub gop: Option<u64>,
    /// Video bitrate in bits per second.
    pub bitrate: Option<f64>,
    /// RTP packets lost and received.
    pub packets_lost: u64,
    /// RTP packets received.
    pub packets_received: u64,
    /// Frames received and keyframes among them.
    pub frames: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Damaged frames.
    pub damaged: u64,
    /// Whether B slices were seen.
    pub b_frames: bool,
    /// Seconds measured.
    pub seconds: f64,
}

impl ProbeReport {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "server:      {}", opt(&self.server));
        let _ = writeln!(s, "streams:     {}", self.streams.join(", "));
        let _ = writeln!(s, "video:       {}", opt(&self.video));
        let _ = writeln!(
            s,
            "audio:       {}",
            self.audio
                .clone()
                .unwrap_or_else(|| "none passed through".into())
        );
        let _ = writeln!(s, "transport:   {}", self.transport.unwrap_or("-"));
        let _ = writeln!(
            s,
            "fps:         {}",
            self.fps
                .map(|f| format!("{f:.2}"))
                .unwrap_or_else(|| "-".into())
        );
        let _ = writeln!(
            s,
            "gop:         {}",
            self.gop
                .map(|g| format!("{g} frames"))
                .unwrap_or_else(|| "- (fewer than two keyframes seen)".into())
        );
        let _ = writeln!(
            s,
            "bitrate:     {}",
            self.bitrate
                .map(|b| format!("{:.0} kbit/s", b / 1000.0))
                .unwrap_or_else(|| "-".into())
        );
        let total = self.packets_received + self.packets_lost;
        let loss = if total > 0 {
            100.0 * self.packets_lost as f64 / total as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "packet loss: {} of {} ({loss:.2} %)",
            self.packets_lost, total
        );
        let _ = writeln!(
            s,
            "frames:      {} ({} keyframes, {} damaged) in {:.1} s",
            self.frames, self.keyframes, self.damaged, self.seconds
        );
        let _ = writeln!(
            s,
            "b-frames:    {}",
            if self.b_frames {
                "yes (turn them off in the camera's encoder settings for smooth browser playback)"
            } else {
                "no"
            }
        );
        s
    }
}

/// Pulls `url` (credentials in it are used and never printed) for `duration`
/// of media. `Err` is a sentence saying why the camera cannot play.
pub async fn probe(url: &Url, carrier: Carrier, duration: Duration) -> Result<ProbeReport, String> {
    let mut clean = url.clone();
    let credentials = if url.username().is_empty() {
        None
    } else {
        let user = percent_decode(url.username());
        let pass = percent_decode(url.password().unwrap_or(""));
        Some(crate::credentials::Credentials::new(user, pass))
    };
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    let params = SessionParams::new(clean, credentials, carrier);
    let hub = Hub::new();
    let stats = CameraStats::default();
    let (status_tx, mut status_rx) = watch::channel(CameraStatus::new(CameraState::Connecting));
    let cancel = CancellationToken::new();
    let mut rx = hub.subscribe();
    let ctx = SessionContext {
        hub: &hub,
        stats: &stats,
        status: &status_tx,
        session_number: 1,
        cancel: &cancel,
    };
    let session = run_session(&params, ctx);
    tokio::pin!(session);

    let mut acc = Accumulator::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    let overall = tokio::time::Instant::now() + duration + Duration::from_secs(20);
    loop {
        let until = deadline.unwrap_or(overall);
        tokio::select! {
            outcome = &mut session => {
                return match outcome.end {
                    SessionEnd::Failed(e) => Err(redact_url(&e.to_string())),
                    SessionEnd::Redirect(to) => Err(format!("the camera redirects to {}; probe that URL", redact_url(to.as_str()))),
                    SessionEnd::Stopped => Err("the session ended".into()),
                };
            }
            ev = rx.recv() => match ev {
                Ok(MediaEvent::Video(f)) => acc.frame(&f, Instant::now()),
                Ok(MediaEvent::Audio(_)) => {}
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = status_rx.changed() => {
                if status_rx.borrow().state == CameraState::Playing && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + duration);
                }
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    if deadline.is_none() {
        cancel.cancel();
        let _ = (&mut session).await;
        return Err(format!(
            "the camera did not start playing within {} s",
            (duration + Duration::from_secs(20)).as_secs()
        ));
    }
    cancel.cancel();
    let _ = (&mut session).await;

    let status = status_tx.borrow().clone();
    let snap = stats.snapshot();
    let mut report = acc.finish();
    report.server = status.server.clone();
    report.streams = status
        .sdp
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .map(|m| m.split_whitespace().next().unwrap_or("").to_string())
        .zip(sdp_encodings(status.sdp.as_deref().unwrap_or("")))
        .map(|(media, enc)| format!("{media} {enc}"))
        .collect();
    let params = hub.info().video_params;
    report.video = match params.as_ref() {
        Some(VideoParams::H264(p)) => parse_sps(&p.sps)
            .map(|i| {
                format!(
                    "H264 {}x{} profile {} level {}",
                    i.width, i.height, i.profile, i.level
                )
            })
            .or_else(|| status.video.clone()),
        // `H265 1280x720 Main L4 Main tier`.
        Some(p @ VideoParams::H265(_)) => Some(p.describe()),
        None => status.video.clone(),
    };
    // The analyzer's judgement (B slices of either codec), from the
    // camera's counters.
    report.b_frames = snap.b_frames > 0;
    report.audio = status.audio.clone();
    report.transport = status.transport;
    report.packets_lost = snap.rtp_packets_lost;
    report.packets_received = snap.rtp_packets_received;
    if report.frames == 0 {
        return Err("the camera answered PLAY but sent no video frame".into());
    }
    Ok(report)
}

/// Encoding names per `m=` section, in order (`?` when not given).
fn sdp_encodings(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            let pt = m.split_whitespace().nth(3).unwrap_or("").to_string();
            let name = match pt.as_str() {
                "0" => "PCMU",
                "8" => "PCMA",
                "26" => "JPEG",
                _ => "?",
            };
            out.push(format!("{name}#{pt}"));
        } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
            if let (Some(last), Some((pt, enc))) = (out.last_mut(), r.split_once(' ')) {
                if last.ends_with(&format!("#{}", pt.trim())) {
                    *last = enc.split('/').next().unwrap_or("?").to_uppercase();
                }
            }
        }
    }
    out.into_iter()
        .map(|e| e.split('#').next().unwrap_or("?").to_string())
        .collect()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Frame-level measurements.
#[derive(Default)]
struct Accumulator {
    first: Option<(u32, Instant)>,
    last_ts: u32,
    /// Sum of timestamp deltas (handles wrap).
    ts_span: u64,
    frames: u64,
    keyframes: u64,
    damaged: u64,
    bytes: u64,
    since_idr: Option<u64>,
    gop: Option<u64>,
    last_arrival: Option<Instant>,
}

impl Accumulator {
    fn frame(&mut self, frame: &VideoFrame, now: Instant) {
        let au = &frame.au;
        if self.first.is_none() {
            self.first = Some((au.timestamp, now));
        } else {
            self.ts_span += u64::from(au.timestamp.wrapping_sub(self.last_ts));
        }
        self.last_ts = au.timestamp;
        self.last_arrival = Some(now);
        self.frames += 1;
        self.bytes += au.len_bytes() as u64;
        if au.damaged {
            self.damaged += 1;
        }
        if frame.keyframe {
            self.keyframes += 1;
            if let Some(n) = self.since_idr {
                self.gop = Some(n);
            }
            self.since_idr = Some(1);
        } else if let Some(n) = self.since_idr.as_mut() {
            *n += 1;
        }
    }

    fn finish(&self) -> ProbeReport {
        let seconds = match (self.first, self.last_arrival) {
            (Some((_, a)), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let media_secs = self.ts_span as f64 / 90_000.0;
        ProbeReport {
            fps: (media_secs > 0.0).then(|| (self.frames - 1) as f64 / media_secs),
            gop: self.gop,
            bitrate: (media_secs > 0.0).then(|| self.bytes as f64 * 8.0 / media_secs),
            frames: self.frames,
            keyframes: self.keyframes,
            damaged: self.damaged,
            seconds,
            ..Default::default()
        }
    }
}
