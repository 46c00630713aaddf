//! Issue 10, `transport = "auto"`: a camera whose UDP media never arrives
//! (the simulator loses every UDP RTP packet, as a firewall would) ends up
//! playing over TCP, and the choice is remembered for the camera's later
//! sessions: after a restart (what `POST /api/v1/cameras/{id}/restart`
//! does) and after the camera drops the connection, it goes straight to
//! TCP. The simulator counts the sessions set up over each transport.
//! Everything on 127.0.0.1.

use std::time::{Duration, Instant};

use camgate::camera::{CameraHandle, CameraState, Supervisor};
use camgate::config::{Config, TransportMode};
use camgate::sim::{FaultStats, SimOptions, SimServer};
use tokio_util::sync::CancellationToken;

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Playing over `transport`, with pictures arriving.
async fn wait_playing(cam: &CameraHandle, transport: &str, limit: Duration) {
    let frames = cam.stats.snapshot().frames_received;
    wait_until(&format!("playing over {transport}"), limit, || {
        let s = cam.status.borrow();
        s.state == CameraState::Playing
            && s.transport == Some(transport)
            && cam.stats.snapshot().frames_received > frames
    })
    .await;
}

/// (UDP sessions, TCP sessions) the simulator set up so far.
fn sessions(stats: &FaultStats) -> (u64, u64) {
    let c = stats.snapshot();
    (c.udp_sessions, c.tcp_sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_tcp_and_remembers_it() {
    let root = CancellationToken::new();
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .unwrap();
    let sim_addr = sim.local_addr();
    let stats = sim.fault_stats();
    let sim_task = tokio::spawn(sim.run(root.clone()));

    // Every UDP RTP packet is lost; over TCP the camera is fine. It drops
    // the connection every 10 s, as a camera that reboots.
    let text = format!(
        "[[camera]]\nid = \"fw\"\nurl = \"rtsp://{sim_addr}/fw?udp_loss=1&reboot_every_s=10\"\n\
         transport = \"auto\"\n"
    );
    let cfg = Config::parse(&text, "test.toml").unwrap().cameras.remove(0);
    assert_eq!(cfg.transport, TransportMode::Auto);
    let supervisor = Supervisor::new(&root);
    let cam = supervisor.add(cfg).await.unwrap();

    // UDP first; nothing arrives for 3 s, then TCP plays.
    let started = Instant::now();
    wait_playing(&cam, "tcp", Duration::from_secs(20)).await;
    let fell_back_after = started.elapsed();
    assert_eq!(sessions(&stats), (1, 1), "one UDP attempt, then TCP");
    assert!(
        fell_back_after >= Duration::from_secs(3),
        "TCP after {fell_back_after:?}: the UDP probe waits 3 s"
    );
    assert!(stats.snapshot().udp_lost > 0, "UDP packets were sent");

    // A restart (the API's restart) goes straight to TCP.
    supervisor.restart("fw").unwrap();
    wait_until("a second TCP session", Duration::from_secs(20), || {
        sessions(&stats).1 >= 2
    })
    .await;
    wait_playing(&cam, "tcp", Duration::from_secs(20)).await;
    assert_eq!(sessions(&stats), (1, 2), "no UDP attempt after the restart");

    // The camera reboots (drops the connection): TCP again.
    wait_until("the camera's reboot", Duration::from_secs(40), || {
        stats.snapshot().reboots >= 1
    })
    .await;
    wait_until("a third TCP session", Duration::from_secs(30), || {
        sessions(&stats).1 >= 3
    })
    .await;
    wait_playing(&cam, "tcp", Duration::from_secs(20)).await;
    assert_eq!(sessions(&stats).0, 1, "no UDP attempt after the reboot");

    root.cancel();
    tokio::time::timeout(Duration::from_secs(5), supervisor.join())
        .await
        .unwrap();
    let _ = sim_task.await;
}
