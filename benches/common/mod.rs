//! What the process-level benches share: the child they measure, and its
//! CPU time and RSS read from /proc. Included with `mod common;`.
#![allow(dead_code)]

use std::process::{Child, Command};

/// Kills the child on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + system) of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = cpu_ticks_split(pid);
    user + system
}

/// CPU time of `pid` in clock ticks: (user, system). The system part is
/// the kernel's work on the process's behalf (system calls, and on
/// loopback the receivers' delivery, which runs in the sender's call).
pub fn cpu_ticks_split(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(11), field(12))
}

/// Resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Jiffies of the whole machine since boot from /proc/stat: (busy, total),
/// busy being everything but idle and iowait. Two readings give the share
/// of all cores that was in use between them.
pub fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits (at most `timeout`) for the child's stdout line `READY <port>`
/// (as tests/support/gst_rtsp_server.py prints) and returns the port; the
/// child must have been spawned with `stdout(Stdio::piped())`.
pub fn ready_port(child: &mut Child, timeout: std::time::Duration) -> Option<u16> {
    use std::io::BufRead;
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("READY ")
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        let _ = tx.send(port);
        // Keep draining, so the child never blocks on a full pipe.
        for _ in lines {}
    });
    rx.recv_timeout(timeout).ok().flatten()
}

/// A directory of the bench's own, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// `camgate-{tag}-{pid}` in the system's temporary directory.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("camgate-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 100 ms until it is true; panics after `timeout`.
pub fn wait(timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Cameras the gateway on `http` says are playing (0 when it does not
/// answer).
pub fn cameras_playing(http: u16) -> usize {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = write!(s, "GET /api/v1/cameras HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.matches("\"state\":\"playing\"").count()
}

/// Why a bench with GStreamer's RTSP server as its camera (and ffmpeg, and
/// `gst-launch-1.0` when `gst_launch`) cannot run here, if it cannot.
pub fn camera_tools_missing(gst_launch: bool) -> Option<String> {
    let ok = |cmd: &mut Command| {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(Command::new("ffmpeg").arg("-version")) {
        return Some("no ffmpeg".into());
    }
    if gst_launch && !ok(Command::new("gst-launch-1.0").arg("--version")) {
        return Some("no gst-launch-1.0".into());
    }
    if !ok(Command::new("/usr/bin/python3").args([
        "-c",
        "import gi; gi.require_version('GstRtspServer', '1.0'); \
         from gi.repository import GstRtspServer",
    ])) {
        return Some("no GStreamer RTSP server for Python (gir1.2-gst-rtsp-server-1.0)".into());
    }
    None
}

/// Encodes a camera clip: 4 s (two GOPs) of 1280x720 at `fps`, H.264 main,
/// ~4 Mbit/s (noise keeps every picture costly, so the rate holds), an
/// Annex B stream that loops cleanly (it starts at a keyframe).
pub fn make_camera_clip(path: &std::path::Path, fps: u32) {
    let gop = 2 * fps;
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=1280x720:rate={fps},noise=alls=12:allf=t"
        ))
        .args(["-t", "4", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-profile:v", "main", "-pix_fmt", "yuv420p"])
        .args([
            "-b:v", "4M", "-minrate", "4M", "-maxrate", "4M", "-bufsize", "4M",
        ])
        .arg("-x264-params")
        .arg(format!(
            "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
        ))
        .args(["-f", "h264"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not encode the clip");
}

/// Splits an Annex B clip into access units: a picture starts at a slice
/// whose first header bit is set (`first_mb_in_slice` 0 /
/// `first_slice_segment_in_pic_flag`) or at a parameter set or SEI before
/// its first slice. `header_len` is 1 (H.264) or 2 (H.265); timestamps
/// `step` apart.
pub fn access_units(
    data: &[u8],
    step: u32,
    header_len: usize,
    is_slice: fn(&[u8]) -> bool,
) -> Vec<camgate::h264::AccessUnit> {
    let mut aus = Vec::new();
    let mut cur: Vec<bytes::Bytes> = Vec::new();
    let mut has_slice = false;
    for nal in camgate::h264::split_annex_b(data) {
        let slice = is_slice(nal);
        let starts = !slice || nal.get(header_len).is_some_and(|b| b & 0x80 != 0);
        if has_slice && starts {
            aus.push(std::mem::take(&mut cur));
            has_slice = false;
        }
        has_slice |= slice;
        cur.push(bytes::Bytes::copy_from_slice(nal));
    }
    aus.push(cur);
    aus.into_iter()
        .enumerate()
        .map(|(i, nals)| camgate::h264::AccessUnit {
            timestamp: i as u32 * step,
            nals,
            damaged: false,
            loss_before: false,
        })
        .collect()
}
