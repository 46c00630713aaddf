//! UDP ingest takes media only from the camera: RTP with a foreign SSRC,
//! sent to camgate's client ports from another port (an attacker on the
//! LAN), is rejected and counted, and the picture stays clean.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use camgate::camera::session::{run_session, Carrier, SessionContext, SessionParams};
use camgate::camera::{CameraState, CameraStats, CameraStatus, Hub};
use camgate::sim::{SimOptions, SimServer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Local UDP ports bound on 127.0.0.1 (IPv4) by anyone on this machine.
fn loopback_udp_ports() -> HashSet<u16> {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.split_once(':'))
        .filter(|(ip, _)| *ip == "0100007F")
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .collect()
}

#[tokio::test]
async fn foreign_rtp_is_rejected_and_the_picture_stays_clean() {
    let root = CancellationToken::new();
    let before = loopback_udp_ports();
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .unwrap();
    let url = url::Url::parse(&format!("rtsp://{}/cam", sim.local_addr())).unwrap();
    tokio::spawn(sim.run(root.clone()));

    let hub = Hub::new();
    let stats = CameraStats::default();
    let (status, mut status_rx) = watch::channel(CameraStatus::new(CameraState::Connecting));
    let cancel = CancellationToken::new();
    let params = SessionParams::new(url, None, Carrier::Udp);
    let ctx = SessionContext {
        hub: &hub,
        stats: &stats,
        status: &status,
        session_number: 1,
        cancel: &cancel,
    };
    let session = run_session(&params, ctx);
    tokio::pin!(session);

    let attack = async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while status_rx.borrow_and_update().state != CameraState::Playing {
                status_rx.changed().await.unwrap();
            }
        })
        .await
        .expect("playing");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Every UDP port that appeared since: camgate's client ports among
        // them (and the simulator's, which ignore this).
        let targets: Vec<u16> = loopback_udp_ports().difference(&before).copied().collect();
        assert!(!targets.is_empty());
        let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let frames_before = stats.frames_received.load(Relaxed);
        for i in 0..300u16 {
            // Well-formed RTP, payload type 96, a foreign SSRC, an IDR
            // fragment-looking payload.
            let mut pkt = vec![0x80, 0x60 | 0x80];
            pkt.extend_from_slice(&i.wrapping_mul(7919).to_be_bytes());
            pkt.extend_from_slice(&(u32::from(i) * 3000).to_be_bytes());
            pkt.extend_from_slice(&0xbad0_5eedu32.to_be_bytes());
            pkt.extend_from_slice(&[0x7c, 0x85, 0xde, 0xad, 0xbe, 0xef]);
            for port in &targets {
                let _ = attacker.send_to(&pkt, ("127.0.0.1", *port)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stats.frames_received.load(Relaxed) - frames_before
    };
    let frames = tokio::select! {
        out = &mut session => panic!("session ended early: {:?}", out.end),
        frames = attack => frames,
    };
    cancel.cancel();
    let _ = session.await;
    root.cancel();

    assert_eq!(
        stats.rtp_discontinuities.load(Relaxed),
        0,
        "foreign SSRC reached the jitter buffer"
    );
    assert_eq!(
        stats.frames_damaged.load(Relaxed),
        0,
        "damaged frames on loopback"
    );
    assert!(frames > 50, "only {frames} frames while attacked");
    let rejected = stats.rtp_packets_rejected.load(Relaxed);
    assert!(rejected >= 300, "only {rejected} datagrams rejected");
}
