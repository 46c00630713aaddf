//! Differential: `retina` (an independent RTSP client) and camgate's own
//! client pull the same sim camera over TCP and UDP; the access units both
//! produce for the same span must be byte-identical.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use camgate::camera::session::{run_session, Carrier, SessionContext, SessionParams};
use camgate::camera::{CameraState, CameraStats, CameraStatus, Hub, MediaEvent};
use camgate::sim::{SimOptions, SimServer};

/// Frames compared: 3 s, spanning a GOP boundary.
const FRAMES: usize = 75;

/// NAL units of an access unit, as lists of bytes, minus AUD (which the
/// two clients may treat differently and carries no picture data).
type Nals = Vec<Vec<u8>>;

async fn camgate_frames(url: url::Url, carrier: Carrier) -> Vec<Nals> {
    let hub = Hub::new();
    let stats = CameraStats::default();
    let (status, _) = watch::channel(CameraStatus::new(CameraState::Connecting));
    let cancel = CancellationToken::new();
    let mut rx = hub.subscribe();
    let params = SessionParams::new(url, None, carrier);
    let ctx = SessionContext {
        hub: &hub,
        stats: &stats,
        status: &status,
        session_number: 1,
        cancel: &cancel,
    };
    let session = run_session(&params, ctx);
    tokio::pin!(session);
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while frames.len() < FRAMES {
        tokio::select! {
            out = &mut session => panic!("camgate session ended early: {:?}", out.end),
            _ = tokio::time::sleep_until(deadline) => panic!("camgate: only {} frames in 20 s", frames.len()),
            ev = rx.recv() => {
                if let Ok(MediaEvent::Video(f)) = ev {
                    assert!(!f.au.damaged, "damaged frame on loopback");
                    if frames.is_empty() && !f.au.is_idr() {
                        continue;
                    }
                    frames.push(f.au.nals.iter().filter(|n| n[0] & 0x1f != 9).map(|n| n.to_vec()).collect());
                }
            }
        }
    }
    cancel.cancel();
    let _ = session.await;
    frames
}

async fn retina_frames(url: url::Url, transport: retina::client::Transport) -> Vec<Nals> {
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
    let mut session = Session::describe(url, SessionOptions::default())
        .await
        .expect("retina DESCRIBE");
    session
        .setup(0, SetupOptions::default().transport(transport))
        .await
        .expect("retina SETUP");
    let session = session
        .play(PlayOptions::default())
        .await
        .expect("retina PLAY");
    let mut demuxed = session.demuxed().expect("demuxed");
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while frames.len() < FRAMES {
        let item = tokio::time::timeout_at(deadline, demuxed.next())
            .await
            .expect("retina frames within 20 s")
            .expect("retina stream continues")
            .expect("no retina error");
        if let retina::codec::CodecItem::VideoFrame(f) = item {
            if frames.is_empty() && !f.is_random_access_point() {
                continue;
            }
            // retina gives AVCC: 4-byte big-endian lengths before each NAL.
            let mut nals = Vec::new();
            let mut data = f.data();
            while data.len() >= 4 {
                let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let nal = &data[4..4 + len];
                if nal[0] & 0x1f != 9 {
                    nals.push(nal.to_vec());
                }
                data = &data[4 + len..];
            }
            frames.push(nals);
        }
    }
    frames
}

async fn compare(carrier: Carrier) {
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .unwrap();
    let addr = sim.local_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(sim.run(shutdown.clone()));
    let url = url::Url::parse(&format!("rtsp://{addr}/diff?audio=0")).unwrap();
    let transport = match carrier {
        Carrier::Tcp => retina::client::Transport::Tcp(Default::default()),
        Carrier::Udp => retina::client::Transport::Udp(Default::default()),
    };
    let (ours, theirs) = tokio::join!(
        camgate_frames(url.clone(), carrier),
        retina_frames(url, transport)
    );
    shutdown.cancel();
    let _ = server.await;
    assert_eq!(ours.len(), theirs.len());
    // Both sessions start at the clip's first IDR; compare frame by frame.
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.len(), b.len(), "frame {i}: NAL count differs");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x == y,
                "frame {i} NAL {j}: {} vs {} bytes differ",
                x.len(),
                y.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camgate_and_retina_agree_over_tcp() {
    compare(Carrier::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camgate_and_retina_agree_over_udp() {
    compare(Carrier::Udp).await;
}
