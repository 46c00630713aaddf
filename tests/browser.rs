//! A real browser watches a camera: Debian's Chromium, headless, opens
//! `/cameras/{id}` and plays the built-in simulator through camgate over
//! WHEP, inside a network namespace with only loopback.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::time::{Duration, Instant};

use browser::Browser;
use common::*;
use serde_json::Value;
use viewer::{in_loopback_netns, runtime};

/// One browser at a time: four Chromiums decoding at once on a 2-core
/// machine starve each other's audio (concealment) and pictures, which is
/// not what these tests measure. Each test holds this while its child runs
/// in its namespace.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

fn toml(http: u16, faults: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "demo"
url = "sim://demo"
{faults}
"#
    )
}

const STATS: &str =
    "(async () => { const p = window.camgatePlayers && window.camgatePlayers[0]; return p ? await p.videoStats() : null; })()";

async fn stats(b: &mut Browser) -> Value {
    b.eval(STATS).await
}

fn n(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// Lines of Chromium's log about failing to decode video.
fn decode_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("decod") && (l.contains("error") || l.contains("fail")))
                || l.contains("h264dec")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn chromium_plays_a_camera_page_at_the_camera_frame_rate() {
    let _one = one_browser();
    if in_loopback_netns("chromium_plays_a_camera_page_at_the_camera_frame_rate") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let mut gw = spawn_gateway(dir.path(), &toml(http, ""), http);
    wait_state(http, "demo", "playing", Duration::from_secs(15));
    runtime().block_on(async {
        let mut b = Browser::launch(dir.path()).await;
        let base = format!("http://127.0.0.1:{http}");
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for round in 0..3 {
            for (fast_start, out) in [(true, &mut fast), (false, &mut slow)] {
                let query = if fast_start { "" } else { "?fast_start=0" };
                b.navigate(&format!("{base}/cameras/demo{query}")).await;
                let ms = b
                    .wait_for(
                        "window.camgatePlayers && window.camgatePlayers[0] && window.camgatePlayers[0].firstFrameMs",
                        Duration::from_secs(15),
                    )
                    .await;
                out.push(ms.as_f64().unwrap().round());
                // Join at another point of the 2 s GOP next time.
                tokio::time::sleep(Duration::from_millis(300 + 500 * round)).await;
            }
        }
        eprintln!("chromium time to first frame (page load → first frame shown), fast start: {fast:?} ms; without: {slow:?} ms");

        // Five seconds of play at the camera's 25 frames per second.
        b.navigate(&format!("{base}/cameras/demo")).await;
        b.wait_for(STATS.replace("await p.videoStats()", "(await p.videoStats())?.framesDecoded").as_str(), Duration::from_secs(15))
            .await;
        // Past the start (and the fast-start burst), five seconds of play.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s0 = stats(&mut b).await;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s1 = stats(&mut b).await;
        let fps = (n(&s1, "framesDecoded") - n(&s0, "framesDecoded")) / t0.elapsed().as_secs_f64();
        eprintln!("chromium: {fps:.1} frames/s decoded; stats {s1}");
        assert!((22.0..=28.0).contains(&fps), "{fps} frames/s, camera sends 25");
        assert_eq!(n(&s1, "frameWidth"), 640.0);
        assert_eq!(n(&s1, "frameHeight"), 360.0);
        // The page shows the camera state; the player says it plays.
        assert_eq!(b.eval("document.querySelector('.state').textContent").await, "playing");
        assert_eq!(b.eval("window.camgatePlayers[0].status").await, "playing");
        // The browser really shows pictures: the video element has size.
        assert_eq!(b.eval("document.querySelector('video').videoWidth").await, 640);

        // The list page plays too, one tile per camera.
        b.navigate(&format!("{base}/")).await;
        let frames = b
            .wait_for(
                &STATS.replace("await p.videoStats()", "(await p.videoStats())?.framesDecoded"),
                Duration::from_secs(15),
            )
            .await;
        assert!(frames.as_f64().unwrap() > 0.0);
        assert_eq!(b.eval("document.querySelectorAll('.tile').length").await, 1);
        let errors = decode_errors(&b.log_text());
        assert!(errors.is_empty(), "decode errors: {errors:#?}");
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

#[test]
fn chromium_decodes_cleanly_through_firmware_faults_for_a_minute() {
    let _one = one_browser();
    if in_loopback_netns("chromium_decodes_cleanly_through_firmware_faults_for_a_minute") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let faults = r#"
[camera.faults]
truncate = 0.02
truncate_resend = 0.01
garbage = 0.01
stall_every_s = 15
stall_ms = 400
ssrc_change_every_s = 25
timestamp_jump_every_s = 35
"#;
    let mut gw = spawn_gateway(dir.path(), &toml(http, faults), http);
    wait_state(http, "demo", "playing", Duration::from_secs(15));
    runtime().block_on(async {
        let mut b = Browser::launch(dir.path()).await;
        b.navigate(&format!("http://127.0.0.1:{http}/cameras/demo")).await;
        let start = Instant::now();
        while b.eval("window.camgatePlayers[0].firstFrameMs").await.is_null() {
            if start.elapsed() > Duration::from_secs(30) {
                let p = b
                    .eval("JSON.stringify([window.camgatePlayers[0].status, window.camgatePlayers[0].message, window.camgatePlayers[0].attempts])")
                    .await;
                panic!("no picture within 30 s: player {p}; camera {}", camera_json(http, "demo"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s0 = stats(&mut b).await;
        let t0 = Instant::now();
        let mut samples = Vec::new();
        while t0.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let s = stats(&mut b).await;
            samples.push(n(&s, "framesDecoded"));
        }
        let s1 = stats(&mut b).await;
        let decoded = n(&s1, "framesDecoded") - n(&s0, "framesDecoded");
        let cam = camera_json(http, "demo");
        eprintln!(
            "60 s of faults: {decoded} frames decoded ({:.1}/s), PLIs {}, FIRs {}, NACKs {}, freezes {} ({} s), dropped {}; camera: resyncs {}, damaged {}, reconnects {}",
            decoded / 60.0,
            n(&s1, "pliCount"),
            n(&s1, "firCount"),
            n(&s1, "nackCount"),
            n(&s1, "freezeCount"),
            n(&s1, "totalFreezesDuration"),
            n(&s1, "framesDropped"),
            cam["stats"]["framing_resyncs"],
            cam["stats"]["frames_damaged"],
            cam["stats"]["reconnects"],
        );
        let errors = decode_errors(&b.log_text());
        assert!(errors.is_empty(), "decode errors: {errors:#?}");
        // It kept playing: every 5 s sample shows progress.
        assert!(samples.windows(2).all(|w| w[1] > w[0]), "stalled: {samples:?}");
        assert!(decoded > 60.0 * 25.0 * 0.8, "{decoded} frames in 60 s");
        assert!(cam["stats"]["framing_resyncs"].as_u64().unwrap() > 0, "faults were injected");
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// Inbound audio statistics of the page's player: codec, samples decoded,
/// level.
const AUDIO_STATS: &str = "(async () => {
  const p = window.camgatePlayers && window.camgatePlayers[0];
  if (!p || !p.pc) return null;
  const report = await p.pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
  let out = null;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out = {
        mimeType: codecs[s.codecId] || '',
        totalSamplesReceived: s.totalSamplesReceived || 0,
        concealedSamples: s.concealedSamples || 0,
        audioLevel: s.audioLevel || 0,
        totalAudioEnergy: s.totalAudioEnergy || 0,
        totalSamplesDuration: s.totalSamplesDuration || 0,
        packetsReceived: s.packetsReceived || 0,
        packetsLost: s.packetsLost || 0,
      };
    }
  });
  return out;
})()";

/// Chromium plays AAC cameras with sound: GStreamer's RTSP server sends
/// H.264 and a 1 kHz sine as AAC, once as RFC 3640 mpeg4-generic at
/// 44.1 kHz (resampled for Opus) and once as RFC 6416 MP4A-LATM at 48 kHz;
/// the browser receives Opus, decodes samples at the pace of the clock
/// and hears a level, and the camera no longer warns of a silent browser.
#[test]
fn chromium_plays_aac_cameras_with_sound() {
    let _one = one_browser();
    if in_loopback_netns("chromium_plays_aac_cameras_with_sound") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let (gst_aac, gst_latm) = (free_tcp_port(), free_tcp_port());
    let _aac = spawn_gst_server_with(
        dir.path(),
        gst_aac,
        "viewer",
        "s3cr3t-pw",
        &["--audio", "aac", "--audio-rate", "44100"],
    );
    let _latm = spawn_gst_server_with(
        dir.path(),
        gst_latm,
        "viewer",
        "s3cr3t-pw",
        &["--audio", "latm"],
    );
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n\
         [[camera]]\nid = \"aac\"\nurl = \"rtsp://viewer:s3cr3t-pw@127.0.0.1:{gst_aac}/test\"\n\n\
         [[camera]]\nid = \"latm\"\nurl = \"rtsp://viewer:s3cr3t-pw@127.0.0.1:{gst_latm}/test\"\n"
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    for (id, audio) in [("aac", "MPEG4-GENERIC/44100"), ("latm", "MP4A-LATM/48000")] {
        let cam = wait_state(http, id, "playing", Duration::from_secs(20));
        assert_eq!(cam["audio"], audio, "{cam}");
        let warnings = cam["warnings"].to_string();
        assert!(
            !warnings.contains("video only") && !warnings.contains("WebRTC"),
            "{warnings}"
        );
    }
    runtime().block_on(async {
        let mut b = Browser::launch(dir.path()).await;
        for id in ["aac", "latm"] {
            b.navigate(&format!("http://127.0.0.1:{http}/cameras/{id}")).await;
            b.wait_for(
                "window.camgatePlayers && window.camgatePlayers[0] && window.camgatePlayers[0].firstFrameMs",
                Duration::from_secs(20),
            )
            .await;
            b.wait_for(
                &AUDIO_STATS.replace("return out;", "return out && out.totalSamplesReceived > 0;"),
                Duration::from_secs(10),
            )
            .await;
            // Players start muted; the page's sound button turns it on (a
            // muted element's audio level is 0).
            b.wait_for(
                "document.querySelector('.sound') && !document.querySelector('.sound').hidden",
                Duration::from_secs(10),
            )
            .await;
            b.eval("document.querySelector('.sound').click()").await;
            assert_eq!(b.eval("document.querySelector('video').muted").await, false);
            assert_eq!(b.eval("document.querySelector('.sound').textContent").await, "sound on");
            // Past the start, three seconds of sound.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let a0 = b.eval(AUDIO_STATS).await;
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let a1 = b.eval(AUDIO_STATS).await;
            let secs = t0.elapsed().as_secs_f64();
            let rate = (n(&a1, "totalSamplesReceived") - n(&a0, "totalSamplesReceived")) / secs;
            let concealed = n(&a1, "concealedSamples") - n(&a0, "concealedSamples");
            eprintln!("{id}: chromium audio {a1}, {rate:.0} samples/s, {concealed} concealed");
            assert_eq!(a1["mimeType"], "audio/opus", "{a1}");
            // Opus decodes at 48 kHz: the samples grow at the clock's pace.
            assert!((40_000.0..=56_000.0).contains(&rate), "{rate} samples/s");
            // The sine is heard (audioLevel is 0..1; silence is 0).
            assert!(n(&a1, "audioLevel") > 0.05, "{a1}");
            // Concealment (samples the decoder made up) stays small.
            assert!(concealed < rate * secs * 0.1, "{concealed} of {} concealed", rate * secs);
            let cam = camera_json(http, id);
            assert_eq!(cam["viewers"], 1, "{cam}");
        }
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// Debian's Chromium has no hardware H.265 decoder, so it offers no H265:
/// its offer to an H.265 camera gets the 422, and the page says in words
/// what the camera sends and what to do, instead of a black tile.
#[test]
fn chromium_without_h265_is_told_why_an_h265_camera_does_not_play() {
    let _one = one_browser();
    if in_loopback_netns("chromium_without_h265_is_told_why_an_h265_camera_does_not_play") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n\
         [[camera]]\nid = \"hevc\"\nurl = \"sim://hevc?codec=h265\"\n"
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    let cam = wait_state(http, "hevc", "playing", Duration::from_secs(15));
    assert!(
        cam["video"].as_str().unwrap_or("").starts_with("H265"),
        "{cam}"
    );
    runtime().block_on(async {
        let mut b = Browser::launch(dir.path()).await;
        b.navigate(&format!("http://127.0.0.1:{http}/cameras/hevc")).await;
        b.wait_for(
            "window.camgatePlayers && window.camgatePlayers[0] && window.camgatePlayers[0].status === 'unsupported'",
            Duration::from_secs(15),
        )
        .await;
        let message = b.eval("window.camgatePlayers[0].message").await;
        let message = message.as_str().unwrap_or("");
        assert!(
            message.contains("H.265 Main profile")
                && message.contains("cannot decode")
                && message.contains("H.264 substream"),
            "{message}"
        );
        // The sentence is on the page, where the picture would be.
        let text = b.eval("document.body.innerText").await;
        assert!(
            text.as_str().unwrap_or("").contains("this browser cannot decode"),
            "{text}"
        );
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}
