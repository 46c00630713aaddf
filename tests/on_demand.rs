//! Issue 5, on-demand cameras at the supervisor level: the RTSP session
//! opens when the first session (viewer or consumer) registers with the
//! camera, and TEARDOWN reaches the camera about `idle_timeout` after the
//! last one left. The camera is camgate's simulator behind a TCP tap that
//! sees every RTSP connection and request. Everything on 127.0.0.1.

mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camgate::camera::consumers::new_consumer_id;
use camgate::camera::{
    CameraHandle, CameraState, Consumer, ConsumerGuard, ConsumerKind, Supervisor,
};
use camgate::config::Config;
use camgate::sim::{SimOptions, SimServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What went through the tap.
#[derive(Default)]
struct Seen {
    /// When each RTSP connection opened.
    connections: Vec<Instant>,
    /// When each TEARDOWN request passed.
    teardowns: Vec<Instant>,
}

/// A TCP proxy in front of `upstream` recording connections and TEARDOWN
/// requests.
async fn tap(upstream: SocketAddr, stop: CancellationToken) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            seen2.lock().unwrap().connections.push(Instant::now());
            let server = TcpStream::connect(upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let seen3 = seen2.clone();
            let stop2 = stop.clone();
            // Client to camera, watching for TEARDOWN.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut tail: Vec<u8> = Vec::new();
                loop {
                    let n = tokio::select! {
                        _ = stop2.cancelled() => return,
                        n = cr.read(&mut buf) => match n { Ok(0) | Err(_) => return, Ok(n) => n },
                    };
                    tail.extend_from_slice(&buf[..n]);
                    if tail.windows(9).any(|w| w == b"TEARDOWN ") {
                        seen3.lock().unwrap().teardowns.push(Instant::now());
                        tail.clear();
                    }
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            let stop3 = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop3.cancelled() => {}
                    _ = tokio::io::copy(&mut sr, &mut cw) => {}
                }
            });
        }
    });
    (addr, seen)
}

fn state(cam: &CameraHandle) -> CameraState {
    cam.status.borrow().state
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A viewer-like session of `cam`, its token a child of the camera's.
fn viewer(cam: &CameraHandle) -> ConsumerGuard {
    cam.consumers.register(Consumer::new(
        new_consumer_id(),
        ConsumerKind::Viewer,
        cam.config.id.clone(),
        None,
        cam.cancel.child_token(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_camera_is_pulled_only_while_wanted() {
    let root = CancellationToken::new();
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .unwrap();
    let sim_addr = sim.local_addr();
    let sim_task = tokio::spawn(sim.run(root.clone()));
    let (tap_addr, seen) = tap(sim_addr, root.clone()).await;

    let text = format!(
        "[[camera]]\nid = \"od\"\nurl = \"rtsp://{tap_addr}/od\"\non_demand = true\nidle_timeout = 2\n"
    );
    let cfg = Config::parse(&text, "test.toml").unwrap().cameras.remove(0);
    assert!(cfg.on_demand);
    let supervisor = Supervisor::new(&root);
    let cam = supervisor.add(cfg).await.unwrap();

    // Nobody watches: idle, no connection.
    assert_eq!(state(&cam), CameraState::Idle);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(state(&cam), CameraState::Idle);
    assert!(seen.lock().unwrap().connections.is_empty());

    // The first viewer: the camera plays.
    let asked = Instant::now();
    let first = viewer(&cam);
    wait_until("playing", Duration::from_secs(10), || {
        state(&cam) == CameraState::Playing
    })
    .await;
    let opened = seen.lock().unwrap().connections[0];
    assert!(opened >= asked);
    // A second viewer comes and goes: still playing.
    let second = viewer(&cam);
    drop(first);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(state(&cam), CameraState::Playing);
    assert!(seen.lock().unwrap().teardowns.is_empty());

    // The last one leaves: TEARDOWN about idle_timeout (2 s) later.
    drop(second);
    let left = Instant::now();
    wait_until("TEARDOWN", Duration::from_secs(15), || {
        !seen.lock().unwrap().teardowns.is_empty()
    })
    .await;
    let after = seen.lock().unwrap().teardowns[0] - left;
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_secs(10),
        "TEARDOWN {after:?} after the last viewer left (idle_timeout 2 s)"
    );
    wait_until("idle", Duration::from_secs(5), || {
        state(&cam) == CameraState::Idle
    })
    .await;
    let frames = cam.stats.snapshot().frames_received;
    assert!(frames > 0);

    // Wanted again: a new session.
    let again = viewer(&cam);
    wait_until("playing again", Duration::from_secs(10), || {
        state(&cam) == CameraState::Playing
    })
    .await;
    assert_eq!(seen.lock().unwrap().connections.len(), 2);

    // Removing the camera ends its viewers (their tokens are children of
    // the camera's) and the RTSP session.
    let token = again.consumer().cancel.clone();
    supervisor.remove("od").await.unwrap();
    assert!(token.is_cancelled());
    wait_until("TEARDOWN on removal", Duration::from_secs(5), || {
        seen.lock().unwrap().teardowns.len() == 2
    })
    .await;
    drop(again);

    root.cancel();
    tokio::time::timeout(Duration::from_secs(5), supervisor.join())
        .await
        .unwrap();
    let _ = sim_task.await;
}

/// The same through the camgate binary and WebRTC viewers (WHEP): the
/// first viewer starts the camera, TEARDOWN comes about `idle_timeout`
/// after the last one left, and a later viewer starts it again.
#[test]
fn on_demand_camera_follows_webrtc_viewers() {
    if viewer::in_loopback_netns("on_demand_camera_follows_webrtc_viewers") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let (tap_addr, seen) = rt.block_on(async {
        let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
            .await
            .unwrap();
        let sim_addr = sim.local_addr();
        tokio::spawn(sim.run(stop.clone()));
        tap(sim_addr, stop.clone()).await
    });
    let dir = common::temp_dir();
    let http = common::free_tcp_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n\
         [[camera]]\nid = \"od\"\nurl = \"rtsp://{tap_addr}/od\"\non_demand = true\nidle_timeout = 2\n"
    );
    let _gw = common::spawn_gateway_checked(dir.path(), &toml, http);
    common::wait_state(http, "od", "idle", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    assert!(seen.lock().unwrap().connections.is_empty());

    rt.block_on(async {
        let v = viewer::Viewer::connect(http, "od", "").await;
        v.wait_frames(10, Duration::from_secs(15)).await;
        assert_eq!(seen.lock().unwrap().connections.len(), 1);
        assert!(seen.lock().unwrap().teardowns.is_empty());
        assert_eq!(v.delete().await, 200);
    });
    let left = Instant::now();
    common::wait_for(Duration::from_secs(15), || {
        !seen.lock().unwrap().teardowns.is_empty()
    });
    let after = seen.lock().unwrap().teardowns[0] - left;
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_secs(10),
        "TEARDOWN {after:?} after the last viewer left (idle_timeout 2 s)"
    );
    common::wait_state(http, "od", "idle", Duration::from_secs(5));

    // A later viewer starts it again.
    rt.block_on(async {
        let v = viewer::Viewer::connect(http, "od", "").await;
        v.wait_frames(10, Duration::from_secs(15)).await;
        assert_eq!(seen.lock().unwrap().connections.len(), 2);
        v.abandon().await;
    });
    stop.cancel();
}
