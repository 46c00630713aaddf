//! `GET /metrics`: Prometheus text exposition of every camera's health and
//! the process's, rendered by `metrics-exporter-prometheus`.
//!
//! Values are read at scrape time from the state the gateway keeps anyway
//! (each camera's [`CameraStats`], status and session registry). Each scrape
//! builds a fresh recorder and sets absolute values on it, so a removed
//! camera leaves no stale series behind. Labels are bounded: the camera id
//! (validated, at most 64 characters) and small fixed sets (state, damage
//! kind, reconnect reason, drop reason, refresh method, egress kind); never
//! a URL or a user name.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::camera::stats::{CameraStats, DAMAGE_KINDS, RECONNECT_REASONS};
use crate::camera::{CameraHandle, CameraState, ConsumerKind};

/// When the process started (first asked: when the routes were built,
/// at gateway start).
pub fn process_start() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(SystemTime::now)
}

/// One scrape's recorder, with the helpers that describe a metric once and
/// set its series.
struct Scrape {
    recorder: PrometheusRecorder,
    /// Metric names already described.
    described: std::collections::HashSet<&'static str>,
}

/// Where the values come from (the exporter wants one).
static METADATA: Metadata<'static> = Metadata::new("camgate", Level::INFO, None);

impl Scrape {
    fn new() -> Scrape {
        Scrape {
            recorder: PrometheusBuilder::new().build_recorder(),
            described: Default::default(),
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    /// Sets counter `name{labels}` to `value` (a total kept elsewhere).
    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: u64,
    ) {
        if self.described.insert(name) {
            self.recorder
                .describe_counter(name.into(), None, SharedString::const_str(help));
        }
        self.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
            .absolute(value);
    }

    /// Sets gauge `name{labels}` to `value`.
    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        if self.described.insert(name) {
            self.recorder
                .describe_gauge(name.into(), unit, SharedString::const_str(help));
        }
        self.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
            .set(value);
    }

    fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// The exposition text for `cameras` and the process.
pub fn render(cameras: &[CameraHandle]) -> String {
    render_with(cameras, None)
}

/// What a node of a cluster reports of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterFigures {
    /// Live nodes seen (this one included).
    pub nodes: usize,
    /// Cameras this node owns.
    pub cameras_owned: usize,
    /// etcd answers.
    pub etcd_up: bool,
    /// Handovers this node took part in, by reason.
    pub handovers: Vec<(&'static str, u64)>,
    /// Writes this node made to etcd.
    pub etcd_writes: u64,
}

/// [`render`], with a cluster node's figures.
pub fn render_with(cameras: &[CameraHandle], cluster: Option<&ClusterFigures>) -> String {
    let mut s = Scrape::new();
    for cam in cameras {
        camera(&mut s, cam);
    }
    process(&mut s, cameras.len());
    if let Some(c) = cluster {
        s.gauge(
            "camgate_cluster_nodes",
            "Nodes of the cluster this node sees alive (itself included).",
            None,
            &[],
            c.nodes as f64,
        );
        s.gauge(
            "camgate_cluster_cameras_owned",
            "Cameras this node owns (pulls and republishes).",
            None,
            &[],
            c.cameras_owned as f64,
        );
        s.gauge(
            "camgate_cluster_etcd_up",
            "1 while etcd answers this node, 0 while it does not (the node is degraded: its cameras keep playing, nothing moves).",
            None,
            &[],
            if c.etcd_up { 1.0 } else { 0.0 },
        );
        for (reason, n) in &c.handovers {
            s.counter(
                "camgate_cluster_handovers_total",
                "Cameras that changed owner with this node as the old or new owner, by reason (failover: the owner died; rebalance: a node joined; drain: the owner left).",
                &[("reason", reason)],
                *n,
            );
        }
        s.counter(
            "camgate_cluster_etcd_writes_total",
            "Writes (puts, transactions, deletes) this node made to etcd.",
            &[],
            c.etcd_writes,
        );
    }
    s.render()
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Every series of one camera.
fn camera(s: &mut Scrape, cam: &CameraHandle) {
    let id = cam.config.id.as_str();
    let c = &[("camera", id)];
    let status = cam.status.borrow().clone();
    let stats: &CameraStats = &cam.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);

    // State.
    let playing = status.state == CameraState::Playing;
    s.gauge(
        "camgate_camera_up",
        "1 while the camera is playing (media flowing), else 0.",
        None,
        c,
        if playing { 1.0 } else { 0.0 },
    );
    for state in CameraState::ALL {
        s.gauge(
            "camgate_camera_state",
            "The camera's state: 1 for the current one, 0 for the others.",
            None,
            &[("camera", id), ("state", state.as_str())],
            if status.state == state { 1.0 } else { 0.0 },
        );
    }
    s.gauge(
        "camgate_camera_state_since_timestamp_seconds",
        "When the camera entered its current state, seconds since the Unix epoch.",
        Some(Unit::Seconds),
        c,
        seconds_since_epoch(status.since),
    );
    s.gauge(
        "camgate_camera_enabled",
        "1 when the camera is enabled in the configuration.",
        None,
        c,
        if cam.config.enabled { 1.0 } else { 0.0 },
    );

    // Ingest.
    s.counter(
        "camgate_received_bytes_total",
        "Bytes of RTP and RTCP received from the camera.",
        c,
        get(&stats.bytes_received),
    );
    s.counter(
        "camgate_rtp_packets_received_total",
        "RTP packets received from the camera (duplicates included).",
        c,
        get(&stats.rtp_packets_received),
    );
    s.counter(
        "camgate_rtp_packets_rejected_total",
        "UDP datagrams dropped because they did not come from the camera.",
        c,
        get(&stats.rtp_packets_rejected),
    );
    s.counter(
        "camgate_rtp_packets_lost_total",
        "RTP packets declared lost by the jitter buffer.",
        c,
        get(&stats.rtp_packets_lost),
    );
    s.counter(
        "camgate_rtp_packets_reordered_total",
        "RTP packets that arrived out of order, in time to be put back in order.",
        c,
        get(&stats.rtp_packets_reordered),
    );
    s.counter(
        "camgate_rtp_packets_late_total",
        "RTP packets that arrived after they were declared lost.",
        c,
        get(&stats.rtp_packets_late),
    );
    s.counter(
        "camgate_rtp_packets_duplicate_total",
        "RTP packets received twice.",
        c,
        get(&stats.rtp_packets_duplicate),
    );
    s.counter(
        "camgate_jitter_buffer_overflows_total",
        "Times the jitter buffer was full and released packets early.",
        c,
        get(&stats.jitter_buffer_overflows),
    );
    s.counter(
        "camgate_rtp_discontinuities_total",
        "SSRC changes and sequence jumps (camera encoder restarts).",
        c,
        get(&stats.rtp_discontinuities),
    );
    s.gauge(
        "camgate_rtp_jitter_seconds",
        "RFC 3550 interarrival jitter of the video stream.",
        Some(Unit::Seconds),
        c,
        get(&stats.jitter_us) as f64 / 1e6,
    );
    s.gauge(
        "camgate_socket_receive_buffer_bytes",
        "UDP receive buffer (SO_RCVBUF) the kernel granted for the camera's sockets.",
        Some(Unit::Bytes),
        c,
        get(&stats.socket_buffer_granted) as f64,
    );
    s.counter(
        "camgate_framing_resyncs_total",
        "Times the interleaved TCP framing was lost and found again.",
        c,
        get(&stats.framing_resyncs),
    );
    s.counter(
        "camgate_framing_skipped_bytes_total",
        "Bytes skipped while resyncing the interleaved TCP framing.",
        c,
        get(&stats.framing_bytes_skipped),
    );

    // Pictures.
    s.counter(
        "camgate_frames_received_total",
        "Video pictures (access units) received.",
        c,
        get(&stats.frames_received),
    );
    s.counter(
        "camgate_keyframes_received_total",
        "Video keyframes (IDR pictures) received.",
        c,
        get(&stats.keyframes_received),
    );
    s.gauge(
        "camgate_video_frames_per_second",
        "Measured frame rate of the video as it arrives; 0 when no picture arrived recently.",
        None,
        c,
        stats.fps(),
    );
    if let Some(gop) = stats.keyframe_interval_seconds() {
        s.gauge(
            "camgate_keyframe_interval_seconds",
            "Measured time between two keyframes the camera sends (GOP duration).",
            Some(Unit::Seconds),
            c,
            gop,
        );
    }
    if let Some(age) = stats.last_keyframe_age_seconds() {
        s.gauge(
            "camgate_last_keyframe_age_seconds",
            "Time since the last keyframe arrived.",
            Some(Unit::Seconds),
            c,
            age,
        );
    }
    for (kind, value) in DAMAGE_KINDS.iter().zip(&stats.frames_damaged_by_kind) {
        s.counter(
            "camgate_frames_damaged_total",
            "Damaged video pictures, by kind of damage (a picture may count under several kinds).",
            &[("camera", id), ("kind", kind)],
            get(value),
        );
    }
    for (reason, value) in [
        ("damaged", &stats.frames_dropped_damaged),
        ("waiting_keyframe", &stats.frames_dropped_waiting_keyframe),
    ] {
        s.counter(
            "camgate_frames_dropped_total",
            "Pictures the repair gate kept from consumers: damaged, or depending on a damaged one until the next keyframe.",
            &[("camera", id), ("reason", reason)],
            get(value),
        );
    }
    s.counter(
        "camgate_bipredicted_frames_total",
        "Video pictures with B slices (they play unsmoothly over WebRTC).",
        c,
        get(&stats.b_frames),
    );
    s.counter(
        "camgate_sps_pps_inserted_total",
        "Keyframes the repair gate completed with SPS/PPS the camera sent earlier or in the SDP.",
        c,
        get(&stats.sps_pps_inserted),
    );
    for (method, value) in [
        ("rtcp", &stats.refresh_requests),
        ("onvif", &stats.onvif_refresh_requests),
    ] {
        s.counter(
            "camgate_refresh_requests_total",
            "Keyframe requests sent to the camera, by method (RTCP PLI+FIR, ONVIF SetSynchronizationPoint).",
            &[("camera", id), ("method", method)],
            get(value),
        );
    }
    s.counter(
        "camgate_onvif_refresh_errors_total",
        "ONVIF keyframe requests that failed.",
        c,
        get(&stats.onvif_refresh_errors),
    );
    s.counter(
        "camgate_rtcp_send_errors_total",
        "RTCP packets (receiver reports, keyframe requests) that could not be sent to the camera.",
        c,
        get(&stats.rtcp_send_errors),
    );
    for (reason, value) in RECONNECT_REASONS.iter().zip(&stats.reconnects_by_reason) {
        s.counter(
            "camgate_reconnects_total",
            "Camera sessions ended and started again, by reason.",
            &[("camera", id), ("reason", reason)],
            get(value),
        );
    }

    // Consumers.
    s.gauge(
        "camgate_viewers",
        "WebRTC viewers of the camera now.",
        None,
        c,
        cam.consumers.count(ConsumerKind::Viewer) as f64,
    );
    s.gauge(
        "camgate_rtp_consumers",
        "Plain RTP outputs (rtp_out) of the camera now.",
        None,
        c,
        cam.consumers.count(ConsumerKind::Rtp) as f64,
    );
    s.gauge(
        "camgate_rtsp_clients",
        "RTSP clients (sessions of the RTSP server) of the camera now.",
        None,
        c,
        cam.consumers.count(ConsumerKind::Rtsp) as f64,
    );
    for (kind, packets, bytes) in [
        ("rtp", &stats.egress_packets, &stats.egress_bytes),
        ("rtsp", &stats.rtsp_packets, &stats.rtsp_bytes),
        ("viewer", &stats.viewer_packets, &stats.viewer_bytes),
    ] {
        s.counter(
            "camgate_egress_packets_total",
            "RTP packets sent to consumers, by kind (rtp: rtp_out, rtsp: RTSP clients, viewer: WebRTC).",
            &[("camera", id), ("kind", kind)],
            get(packets),
        );
        s.counter(
            "camgate_egress_bytes_total",
            "RTP bytes sent to consumers, by kind (rtp: rtp_out, rtsp: RTSP clients, viewer: WebRTC before SRTP).",
            &[("camera", id), ("kind", kind)],
            get(bytes),
        );
    }
    s.counter(
        "camgate_consumer_frames_skipped_total",
        "Pictures consumers skipped because they fell behind.",
        c,
        get(&stats.consumer_frames_skipped),
    );
    s.counter(
        "camgate_viewer_plis_total",
        "RTCP PLIs received from WebRTC viewers.",
        c,
        get(&stats.viewer_plis),
    );
    s.counter(
        "camgate_viewer_firs_total",
        "RTCP FIRs received from WebRTC viewers.",
        c,
        get(&stats.viewer_firs),
    );
    s.counter(
        "camgate_viewer_nacks_total",
        "RTCP NACK messages received from WebRTC viewers.",
        c,
        get(&stats.viewer_nacks),
    );
    s.counter(
        "camgate_viewer_retransmits_total",
        "Packets resent to WebRTC viewers in answer to NACKs.",
        c,
        get(&stats.viewer_retransmits),
    );
    s.counter(
        "camgate_viewer_sessions_total",
        "WebRTC viewer sessions started.",
        c,
        get(&stats.viewer_sessions),
    );
}

/// The process's series.
fn process(s: &mut Scrape, cameras: usize) {
    s.gauge(
        "camgate_cameras",
        "Cameras configured (file and API).",
        None,
        &[],
        cameras as f64,
    );
    s.gauge(
        "camgate_build_info",
        "Always 1; the version is a label.",
        None,
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    if let Some(rss) = resident_memory_bytes() {
        s.gauge(
            "process_resident_memory_bytes",
            "Resident memory size.",
            Some(Unit::Bytes),
            &[],
            rss as f64,
        );
    }
    if let Some(fds) = open_fds() {
        s.gauge(
            "process_open_fds",
            "Open file descriptors.",
            None,
            &[],
            fds as f64,
        );
    }
    s.gauge(
        "process_start_time_seconds",
        "When the process started, seconds since the Unix epoch.",
        Some(Unit::Seconds),
        &[],
        seconds_since_epoch(process_start()),
    );
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let m = rt.metrics();
        s.gauge(
            "camgate_tokio_tasks",
            "Tokio tasks alive.",
            None,
            &[],
            m.num_alive_tasks() as f64,
        );
        s.gauge(
            "camgate_tokio_workers",
            "Tokio worker threads.",
            None,
            &[],
            m.num_workers() as f64,
        );
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Entries of `/proc/self/fd` (the directory handle itself excluded).
fn open_fds() -> Option<usize> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_camera_has_the_fixed_series_and_help() {
        let root = tokio_util::sync::CancellationToken::new();
        let sup = crate::camera::Supervisor::new(&root);
        let cfg = crate::config::Config::parse(
            "[[camera]]\nid = \"cam1\"\nurl = \"rtsp://127.0.0.1:9/x\"\nenabled = false\n",
            "t.toml",
        )
        .unwrap()
        .cameras
        .remove(0);
        sup.add(cfg).await.unwrap();
        let text = render(&sup.cameras());
        for needle in [
            "camgate_camera_up{camera=\"cam1\"} 0",
            "camgate_camera_state{camera=\"cam1\",state=\"stopped\"} 1",
            "camgate_camera_state{camera=\"cam1\",state=\"playing\"} 0",
            "camgate_rtp_packets_lost_total{camera=\"cam1\"} 0",
            "camgate_frames_damaged_total{camera=\"cam1\",kind=\"packet_loss\"} 0",
            "camgate_framing_resyncs_total{camera=\"cam1\"} 0",
            "camgate_reconnects_total{camera=\"cam1\",reason=\"unreachable\"} 0",
            "camgate_viewers{camera=\"cam1\"} 0",
            "# TYPE camgate_rtp_packets_lost_total counter",
            "# TYPE process_open_fds gauge",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        // Every metric has HELP.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
        // A removed camera leaves nothing behind.
        sup.remove("cam1").await.unwrap();
        assert!(!render(&sup.cameras()).contains("cam1"));
    }
}
