//! Camera health at a glance, for the dashboard and `GET /api/v1/health`:
//! a sampler task reads every camera's counters and status every 2 s and
//! keeps the last minute; [`judge`] turns those samples into a light with
//! its reason in words and [`series`] into the sparklines. Both are plain
//! functions of the samples (time comes in each sample), so the rules are
//! tested without a camera or a clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::camera::{CameraHandle, CameraState, CameraStats, Supervisor};

/// How often the sampler reads every camera.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How far back the samples go: "in the last minute".
pub const WINDOW: Duration = Duration::from_secs(60);
/// A playing camera whose frame counter stands still longer than this is
/// down (the session itself gives up after 5 s without pictures too).
pub const STALL: Duration = Duration::from_secs(5);
/// Samples kept per camera at most, whatever the timing: the ring is
/// bounded even if the sampler were driven faster than [`SAMPLE_EVERY`].
const MAX_SAMPLES: usize = 64;

/// What the sampler read of one camera at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// The camera's state then.
    pub state: CameraState,
    /// Its last error then (credentials already redacted), the reason of a
    /// down camera.
    pub last_error: Option<String>,
    /// Measured frame rate then (0 when no frame arrived for 2 s).
    pub fps: f64,
    /// Counter: bytes received from the camera (bitrate).
    pub bytes_received: u64,
    /// Counter: video frames received (is media flowing?).
    pub frames_received: u64,
    /// Counter: RTP packets lost.
    pub rtp_packets_lost: u64,
    /// Counter: damaged frames.
    pub frames_damaged: u64,
    /// Counter: interleaved framing lost and found again.
    pub framing_resyncs: u64,
    /// Counter: sessions started after the first.
    pub reconnects: u64,
    /// Counter: frames with B slices.
    pub b_frames: u64,
}

impl Sample {
    /// Reads `cam` now (`at`).
    pub fn read(cam: &CameraHandle, at: Instant) -> Sample {
        let status = cam.status.borrow();
        let s = &cam.stats;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Sample {
            at,
            state: status.state,
            last_error: status.last_error.clone(),
            fps: s.fps(),
            bytes_received: get(&s.bytes_received),
            frames_received: get(&s.frames_received),
            rtp_packets_lost: get(&s.rtp_packets_lost),
            frames_damaged: get(&s.frames_damaged),
            framing_resyncs: get(&s.framing_resyncs),
            reconnects: get(&s.reconnects),
            b_frames: get(&s.b_frames),
        }
    }
}

/// The last [`WINDOW`] of one camera's samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds the newest sample (samples come in time order) and forgets
    /// those older than [`WINDOW`] before it.
    pub fn push(&mut self, sample: Sample) {
        let now = sample.at;
        self.samples.push_back(sample);
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// The samples, oldest first.
    pub fn samples(&mut self) -> &[Sample] {
        self.samples.make_contiguous()
    }
}

/// A camera's health light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    /// Media flowing, nothing wrong in the last minute.
    Green,
    /// Playing but degraded (loss, damage, resyncs, reconnects, B-frames in
    /// the last minute, or frames late), or still connecting for the
    /// first few seconds.
    Amber,
    /// Down: not playing, or playing with no frame for over [`STALL`].
    Red,
    /// Not pulled on purpose: disabled, or on demand with nobody watching.
    Off,
}

/// A light and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The light.
    pub light: Light,
    /// The reason, a sentence that starts with the light's word (`healthy`,
    /// `degraded`, `starting`, `down`, `off`).
    pub reason: String,
}

impl Verdict {
    fn new(light: Light, reason: impl Into<String>) -> Verdict {
        Verdict {
            light,
            reason: reason.into(),
        }
    }
}

/// The health light of a camera from its samples (oldest first, the last
/// one is now):
///
/// - off: `idle` (on demand, nobody watches) or `stopped` (disabled);
/// - red: not playing, named by the most recent failure state and the last
///   error, or playing with the frame counter still for over [`STALL`];
///   a camera merely `connecting` (no failure since it last played) is
///   amber "starting" for its first [`STALL`];
/// - amber: playing, and in the window packets were lost, frames damaged,
///   the framing resynced, the session reconnected or B-frames arrived, or
///   no frame arrived in the last interval;
/// - green: playing with frames arriving, and none of the above.
pub fn judge(samples: &[Sample]) -> Verdict {
    let Some(last) = samples.last() else {
        return Verdict::new(Light::Amber, "starting: not sampled yet");
    };
    match last.state {
        CameraState::Idle => {
            Verdict::new(Light::Off, "off: on demand, connects when someone watches")
        }
        CameraState::Stopped => Verdict::new(Light::Off, "off: stopped (disabled)"),
        CameraState::Playing => judge_playing(samples, last),
        _ => judge_down(samples, last),
    }
}

/// The state's name in words (`not_found` → `not found`).
fn words(state: CameraState) -> String {
    state.as_str().replace('_', " ")
}

/// How long from `from` to `to`, in whole seconds for a sentence.
fn secs(from: &Sample, to: &Sample) -> u64 {
    to.at
        .saturating_duration_since(from.at)
        .as_secs_f64()
        .round() as u64
}

fn judge_down(samples: &[Sample], last: &Sample) -> Verdict {
    // The samples since the camera last played (or was switched off).
    let run: Vec<&Sample> = samples
        .iter()
        .rev()
        .take_while(|s| {
            !matches!(
                s.state,
                CameraState::Playing | CameraState::Idle | CameraState::Stopped
            )
        })
        .collect();
    let down_since = run.last().copied().unwrap_or(last);
    let down_for = last.at.saturating_duration_since(down_since.at);
    // The newest failure (anything but `connecting`) of that run: a camera
    // connecting again after one is still down for the same reason.
    let failure = run.iter().find(|s| s.state != CameraState::Connecting);
    match failure {
        None if down_for <= STALL => Verdict::new(Light::Amber, "starting: connecting"),
        None => Verdict::new(
            Light::Red,
            format!("down: connecting for {} s", secs(down_since, last)),
        ),
        Some(f) => {
            let mut reason = format!("down: {}", words(f.state));
            if let Some(e) = &last.last_error {
                reason.push_str(": ");
                reason.push_str(e);
            }
            Verdict::new(Light::Red, reason)
        }
    }
}

fn judge_playing(samples: &[Sample], last: &Sample) -> Verdict {
    // The samples of this playing run, newest first.
    let run: Vec<&Sample> = samples
        .iter()
        .rev()
        .take_while(|s| s.state == CameraState::Playing)
        .collect();
    // The oldest sample of the run with the frame count of now: since then
    // no frame arrived.
    let still_since = run
        .iter()
        .take_while(|s| s.frames_received == last.frames_received)
        .last()
        .copied()
        .unwrap_or(last);
    let still_for = last.at.saturating_duration_since(still_since.at);
    if still_for > STALL {
        return Verdict::new(
            Light::Red,
            format!(
                "down: playing, but no video frame for {} s",
                secs(still_since, last)
            ),
        );
    }
    let previous = run.get(1).copied();
    let flowing = match previous {
        Some(p) => last.frames_received > p.frames_received,
        // Only one sample of this run yet: the measured rate says it.
        None => last.fps > 0.0,
    };

    let first = &samples[0];
    let delta = |f: fn(&Sample) -> u64| f(last).saturating_sub(f(first));
    let mut problems = Vec::new();
    let mut count = |n: u64, one: &str, many: &str| {
        if n > 0 {
            problems.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    };
    count(delta(|s| s.rtp_packets_lost), "packet lost", "packets lost");
    count(
        delta(|s| s.frames_damaged),
        "damaged frame",
        "damaged frames",
    );
    count(
        delta(|s| s.framing_resyncs),
        "framing resync",
        "framing resyncs",
    );
    count(delta(|s| s.reconnects), "reconnect", "reconnects");
    count(delta(|s| s.b_frames), "B-frame", "B-frames");

    let mut reason = String::new();
    if !problems.is_empty() {
        reason = format!("{} in the last minute", problems.join(", "));
    }
    if !flowing {
        if !reason.is_empty() {
            reason.push_str("; ");
        }
        match previous {
            Some(_) => {
                reason.push_str(&format!("no video frame for {} s", secs(still_since, last)))
            }
            None => reason.push_str("waiting for the first frames"),
        }
    }
    if !reason.is_empty() {
        let word = if previous.is_none() && problems.is_empty() {
            "starting"
        } else {
            "degraded"
        };
        return Verdict::new(Light::Amber, format!("{word}: {reason}"));
    }

    let fps = if last.fps > 0.0 {
        last.fps
    } else {
        previous.map_or(0.0, |p| rate(p, last, |s| s.frames_received))
    };
    let mut reason = format!("healthy: {} fps", format_fps(fps));
    if let Some(p) = previous {
        reason.push_str(", ");
        reason.push_str(&format_bitrate(rate(p, last, |s| s.bytes_received) * 8.0));
    }
    Verdict::new(Light::Green, reason)
}

/// Change per second of a counter from `a` to `b` (0 over no time).
fn rate(a: &Sample, b: &Sample, f: fn(&Sample) -> u64) -> f64 {
    let dt = b.at.saturating_duration_since(a.at).as_secs_f64();
    if dt <= 0.0 {
        return 0.0;
    }
    f(b).saturating_sub(f(a)) as f64 / dt
}

/// `25`, `12.5`: whole when within 0.05 of a whole number.
fn format_fps(fps: f64) -> String {
    let r = (fps * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// `850 kbit/s`, `1.9 Mbit/s`.
pub fn format_bitrate(bps: f64) -> String {
    if bps >= 1e6 {
        format!("{:.1} Mbit/s", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.0} kbit/s", bps / 1e3)
    } else {
        format!("{bps:.0} bit/s")
    }
}

/// The sparklines: one point per interval between consecutive samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Bits per second received from the camera.
    pub bitrate_bps: Vec<u64>,
    /// Video frames per second received.
    pub fps: Vec<f64>,
    /// RTP packets lost in the interval.
    pub lost: Vec<u64>,
}

/// The series of `samples` (oldest first).
pub fn series(samples: &[Sample]) -> Series {
    let mut out = Series::default();
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        out.bitrate_bps
            .push((rate(a, b, |s| s.bytes_received) * 8.0).round() as u64);
        out.fps
            .push((rate(a, b, |s| s.frames_received) * 10.0).round() / 10.0);
        out.lost
            .push(b.rtp_packets_lost.saturating_sub(a.rtp_packets_lost));
    }
    out
}

/// One camera's health as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CameraHealth {
    /// The camera id.
    pub camera: String,
    /// Its light.
    pub light: Light,
    /// Why, in words.
    pub reason: String,
    /// Its state now.
    pub state: CameraState,
    /// Nominal seconds between the series' points.
    pub interval_seconds: f64,
    /// The sparklines, oldest first.
    #[serde(flatten)]
    pub series: Series,
}

/// One camera's samples, with the counters they were read from: a camera
/// replaced by a reload has new counters, and its history starts again.
#[derive(Debug)]
struct Entry {
    stats: Arc<CameraStats>,
    history: History,
}

/// Every camera's recent samples, filled by [`sample`] and read by the
/// health routes.
#[derive(Debug, Default)]
pub struct HealthBook {
    cameras: Mutex<BTreeMap<String, Entry>>,
}

impl HealthBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a sample of each of `cameras` taken `at`, and forgets the
    /// cameras not among them (removed).
    pub fn record(&self, cameras: &[CameraHandle], at: Instant) {
        let samples: Vec<Sample> = cameras.iter().map(|c| Sample::read(c, at)).collect();
        let mut book = self.lock();
        book.retain(|id, _| cameras.iter().any(|c| c.config.id == *id));
        for (cam, sample) in cameras.iter().zip(samples) {
            let entry = book.entry(cam.config.id.clone()).or_insert_with(|| Entry {
                stats: cam.stats.clone(),
                history: History::default(),
            });
            if !Arc::ptr_eq(&entry.stats, &cam.stats) {
                entry.stats = cam.stats.clone();
                entry.history = History::default();
            }
            entry.history.push(sample);
        }
    }

    /// The health of `cam` from its samples; a camera not sampled yet is
    /// judged on one sample read now.
    pub fn report(&self, cam: &CameraHandle) -> CameraHealth {
        let mut book = self.lock();
        let recorded = book
            .get_mut(&cam.config.id)
            .filter(|e| Arc::ptr_eq(&e.stats, &cam.stats))
            .map(|e| e.history.samples().to_vec())
            .filter(|s| !s.is_empty());
        drop(book);
        let samples = recorded.unwrap_or_else(|| vec![Sample::read(cam, Instant::now())]);
        let verdict = judge(&samples);
        CameraHealth {
            camera: cam.config.id.clone(),
            light: verdict.light,
            reason: verdict.reason,
            state: samples.last().map_or(CameraState::Connecting, |s| s.state),
            interval_seconds: SAMPLE_EVERY.as_secs_f64(),
            series: series(&samples),
        }
    }
}

/// The sampler: records every camera of `supervisor` into `book` every
/// [`SAMPLE_EVERY`] until `shutdown`.
pub async fn sample(
    book: Arc<HealthBook>,
    supervisor: Arc<Supervisor>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => book.record(&supervisor.cameras(), Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A playing camera at 25 fps and 2 Mbit/s, `n` samples 2 s apart.
    fn playing(n: usize) -> Vec<Sample> {
        let t0 = Instant::now();
        (0..n as u64)
            .map(|i| Sample {
                at: t0 + Duration::from_secs(2 * i),
                state: CameraState::Playing,
                last_error: None,
                fps: 25.0,
                bytes_received: 1_000 + i * 500_000,
                frames_received: 10 + i * 50,
                rtp_packets_lost: 0,
                frames_damaged: 0,
                framing_resyncs: 0,
                reconnects: 0,
                b_frames: 0,
            })
            .collect()
    }

    #[test]
    fn flowing_media_is_green_with_rate_and_bitrate() {
        let v = judge(&playing(5));
        assert_eq!(v, Verdict::new(Light::Green, "healthy: 25 fps, 2.0 Mbit/s"));
        // One sample: the measured rate alone.
        let v = judge(&playing(1));
        assert_eq!(v, Verdict::new(Light::Green, "healthy: 25 fps"));
    }

    #[test]
    fn loss_damage_resyncs_reconnects_and_b_frames_in_the_window_are_amber() {
        let mut s = playing(10);
        s[9].rtp_packets_lost = 12;
        s[9].frames_damaged = 3;
        assert_eq!(
            judge(&s),
            Verdict::new(
                Light::Amber,
                "degraded: 12 packets lost, 3 damaged frames in the last minute"
            )
        );
        let mut s = playing(10);
        for x in &mut s[5..] {
            x.framing_resyncs = 1;
            x.reconnects = 2;
            x.b_frames = 40;
        }
        assert_eq!(
            judge(&s).reason,
            "degraded: 1 framing resync, 2 reconnects, 40 B-frames in the last minute"
        );
        // Counted before the window: forgotten.
        let mut h = History::default();
        let mut s = playing(40);
        s[0].rtp_packets_lost = 0;
        for x in &mut s[1..] {
            x.rtp_packets_lost = 7;
        }
        for x in s {
            h.push(x);
        }
        assert_eq!(h.samples().len(), 31);
        assert_eq!(judge(h.samples()).light, Light::Green);
    }

    #[test]
    fn not_playing_is_red_with_the_failure_and_the_last_error() {
        let mut s = playing(3);
        let error = "cannot connect to 127.0.0.1:1: Connection refused (os error 111)";
        s[1].state = CameraState::Unreachable;
        s[1].last_error = Some(error.into());
        s[2].state = CameraState::Connecting;
        s[2].last_error = Some(error.into());
        assert_eq!(
            judge(&s),
            Verdict::new(Light::Red, format!("down: unreachable: {error}"))
        );
        s[2].state = CameraState::NotFound;
        assert!(judge(&s).reason.starts_with("down: not found: "));
    }

    #[test]
    fn connecting_is_starting_then_down_after_the_stall_limit() {
        let mut s = playing(5);
        for x in &mut s {
            x.state = CameraState::Connecting;
        }
        assert_eq!(
            judge(&s[..3]),
            Verdict::new(Light::Amber, "starting: connecting")
        );
        assert_eq!(
            judge(&s),
            Verdict::new(Light::Red, "down: connecting for 8 s")
        );
    }

    #[test]
    fn playing_without_frames_is_amber_then_red() {
        let mut s = playing(6);
        let still = s[1].frames_received;
        for x in &mut s[2..] {
            x.frames_received = still;
        }
        // Still since sample 1: 2 s, then 4 s, then 8 s.
        assert_eq!(
            judge(&s[..3]),
            Verdict::new(Light::Amber, "degraded: no video frame for 2 s")
        );
        assert_eq!(judge(&s[..4]).light, Light::Amber);
        assert_eq!(
            judge(&s),
            Verdict::new(Light::Red, "down: playing, but no video frame for 8 s")
        );
        // Just started playing, no frame measured yet.
        let mut s = playing(2);
        s[0].state = CameraState::Connecting;
        s[1].fps = 0.0;
        assert_eq!(
            judge(&s),
            Verdict::new(Light::Amber, "starting: waiting for the first frames")
        );
    }

    #[test]
    fn idle_and_stopped_are_off() {
        let mut s = playing(2);
        s[1].state = CameraState::Idle;
        assert_eq!(judge(&s).light, Light::Off);
        s[1].state = CameraState::Stopped;
        assert_eq!(judge(&s).light, Light::Off);
    }

    #[test]
    fn series_are_per_interval() {
        let mut s = playing(3);
        s[2].rtp_packets_lost = 4;
        let out = series(&s);
        assert_eq!(out.bitrate_bps, vec![2_000_000, 2_000_000]);
        assert_eq!(out.fps, vec![25.0, 25.0]);
        assert_eq!(out.lost, vec![0, 4]);
        assert_eq!(series(&s[..1]), Series::default());
    }

    #[test]
    fn formats() {
        assert_eq!(format_bitrate(1_900_000.0), "1.9 Mbit/s");
        assert_eq!(format_bitrate(850_400.0), "850 kbit/s");
        assert_eq!(format_bitrate(12.0), "12 bit/s");
        assert_eq!(format_fps(24.97), "25");
        assert_eq!(format_fps(12.5), "12.5");
    }
}
