//! The reconciliation: from the node's view of the cluster, the cameras it
//! should own ([`place`]), and the etcd transactions that claim, hand over
//! and release them so that each camera has exactly one owner.

use super::*;

/// Cameras asked for or released in one transaction (etcd allows 128
/// operations).
const BATCH: usize = 100;
/// Cameras claimed in one transaction: two operations each (the owner key
/// put, the handover request deleted).
const CLAIM_BATCH: usize = 60;

impl ClusterNode {
    /// Starts, hands over and stops cameras towards the placement.
    pub(super) async fn reconcile(
        &self,
        client: &mut Client,
        known: &mut Known,
        lease: i64,
        draining: bool,
    ) -> Result<(), String> {
        let me = self.cfg.node_id.as_str();
        self.refresh_cameras(known);
        let cameras = known.cameras.clone();
        let candidates: Vec<Candidate> = known
            .nodes
            .values()
            .filter(|n| !n.draining)
            .map(|n| Candidate {
                id: n.id.clone(),
                max_cameras: n.max_cameras,
            })
            .collect();
        // Placement is the same until the nodes or the cameras change.
        if known.placed_for.as_ref() != Some(&candidates) {
            known.desired = place(
                cameras.keys().map(String::as_str),
                &candidates,
                &known.owners,
            );
            known.desired_here = known
                .desired
                .iter()
                .filter(|(_, n)| *n == me)
                .map(|(c, _)| c.clone())
                .collect();
            known.placed_for = Some(candidates);
        }
        let desired = std::mem::take(&mut known.desired);
        let running: HashSet<String> = self.runner.running().into_iter().collect();
        let lease_opts = || Some(PutOptions::new().with_lease(lease));
        // Only cameras this node has to do with: placed here, owned here,
        // running here, or handed to it. The others are other nodes' work.
        let mut relevant: Vec<String> = known
            .desired_here
            .iter()
            .chain(known.owned_here.iter())
            .chain(running.iter())
            .chain(
                known
                    .handovers
                    .iter()
                    .filter(|(_, n)| *n == me)
                    .map(|(c, _)| c),
            )
            .cloned()
            .collect();
        relevant.sort_unstable();
        relevant.dedup();

        let mut to_claim: Vec<String> = Vec::new();
        let mut to_ask: Vec<String> = Vec::new();
        let mut to_release: Vec<String> = Vec::new();
        for id in &relevant {
            let Some(cam) = cameras.get(id) else { continue };
            let want = desired.get(id).map(String::as_str);
            let owner = known.owners.get(id).cloned();
            match owner.as_deref() {
                Some(o) if o == me => {
                    if !running.contains(id) {
                        self.runner.start(cam.config.clone(), true).await;
                    } else if !self.runner.outputs_on(id) {
                        self.runner.enable_outputs(id);
                    }
                    // Hand over when the camera's next owner plays it.
                    let next = known.handovers.get(id).map(String::as_str);
                    if let (Some(w), Some(n)) = (want, next) {
                        if w != me && n == w {
                            to_release.push(id.clone());
                        }
                    }
                }
                None => {
                    // Ours when placement says so, or when we still play it
                    // (etcd lost our keys while we kept it playing).
                    let mine =
                        want == Some(me) || (running.contains(id) && self.runner.outputs_on(id));
                    if !mine || draining {
                        if running.contains(id) && !self.runner.outputs_on(id) && want != Some(me) {
                            self.runner.stop(id).await;
                        }
                        continue;
                    }
                    to_claim.push(id.clone());
                }
                Some(other) => {
                    if want == Some(me) && !draining {
                        // Make before break: play it here first.
                        if !running.contains(id) {
                            self.runner.start(cam.config.clone(), false).await;
                        } else if self.runner.is_playing(id)
                            && known.handovers.get(id).map(String::as_str) != Some(me)
                        {
                            to_ask.push(id.clone());
                            tracing::info!(camera = %id, from = other, "cluster: camera ready here; asking its owner to hand it over");
                        }
                    } else if running.contains(id) {
                        // Another node owns it: stop ours (a warm-up no
                        // longer wanted, or a double after etcd came back).
                        self.runner.stop(id).await;
                        if known.handovers.get(id).map(String::as_str) == Some(me) {
                            let _ = client.delete(self.key("handover", id), None).await;
                            self.view.writes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if !(to_claim.is_empty() && to_ask.is_empty() && to_release.is_empty()) {
            tracing::debug!(
                node = me,
                claim = to_claim.len(),
                ask = to_ask.len(),
                release = to_release.len(),
                "cluster: reconciling"
            );
        }
        // Handovers asked for, many per transaction.
        for batch in to_ask.chunks(BATCH) {
            let txn = Txn::new().and_then(
                batch
                    .iter()
                    .map(|id| TxnOp::put(self.key("handover", id), me, lease_opts()))
                    .collect::<Vec<_>>(),
            );
            client.txn(txn).await.map_err(|e| e.to_string())?;
            self.view.writes.fetch_add(1, Ordering::Relaxed);
            for id in batch {
                known.handovers.insert(id.clone(), me.to_string());
            }
            known.changed = true;
        }
        // Cameras given up: outputs stop here first, then the keys go (only
        // while they are still ours), many per transaction.
        let reason = if draining { "drain" } else { "rebalance" };
        for batch in to_release.chunks(BATCH) {
            for id in batch {
                self.runner.stop(id).await;
            }
            let txn = |ids: &[String]| {
                Txn::new()
                    .when(
                        ids.iter()
                            .map(|id| Compare::value(self.key("owners", id), CompareOp::Equal, me))
                            .collect::<Vec<_>>(),
                    )
                    .and_then(
                        ids.iter()
                            .map(|id| TxnOp::delete(self.key("owners", id), None))
                            .collect::<Vec<_>>(),
                    )
            };
            let all = client
                .txn(txn(batch))
                .await
                .map_err(|e| e.to_string())?
                .succeeded();
            self.view.writes.fetch_add(1, Ordering::Relaxed);
            if !all {
                for id in batch {
                    client
                        .txn(txn(std::slice::from_ref(id)))
                        .await
                        .map_err(|e| e.to_string())?;
                    self.view.writes.fetch_add(1, Ordering::Relaxed);
                }
            }
            for id in batch {
                known.owners.remove(id);
                self.view.set_owner(id, None);
                known.owned_here.remove(id);
                self.view.count_handover(reason);
                tracing::info!(camera = %id, reason, "cluster: camera handed over");
            }
            known.changed = true;
        }
        // Claims, many per transaction: each camera's key only if absent.
        // A batch fails whole when any key exists; its cameras are then
        // claimed one by one.
        for batch in to_claim.chunks(CLAIM_BATCH) {
            let txn = |ids: &[String]| {
                Txn::new()
                    .when(
                        ids.iter()
                            .map(|id| {
                                Compare::create_revision(
                                    self.key("owners", id),
                                    CompareOp::Equal,
                                    0,
                                )
                            })
                            .collect::<Vec<_>>(),
                    )
                    .and_then(
                        ids.iter()
                            .map(|id| TxnOp::put(self.key("owners", id), me, lease_opts()))
                            // The handover this node asked for is done.
                            .chain(
                                ids.iter()
                                    .filter(|id| {
                                        known.handovers.get(*id).map(String::as_str) == Some(me)
                                    })
                                    .map(|id| TxnOp::delete(self.key("handover", id), None)),
                            )
                            .collect::<Vec<_>>(),
                    )
            };
            let won = client
                .txn(txn(batch))
                .await
                .map_err(|e| e.to_string())?
                .succeeded();
            self.view.writes.fetch_add(1, Ordering::Relaxed);
            let won: Vec<&String> = if won {
                batch.iter().collect()
            } else {
                let mut one_by_one = Vec::new();
                for id in batch {
                    let ok = client
                        .txn(txn(std::slice::from_ref(id)))
                        .await
                        .map_err(|e| e.to_string())?
                        .succeeded();
                    self.view.writes.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        one_by_one.push(id);
                    }
                }
                one_by_one
            };
            for id in won {
                let Some(cam) = cameras.get(id) else { continue };
                known.owners.insert(id.clone(), me.to_string());
                self.view.set_owner(id, Some(me));
                known.owned_here.insert(id.clone());
                known.changed = true;
                if running.contains(id) {
                    self.runner.enable_outputs(id);
                } else {
                    self.runner.start(cam.config.clone(), true).await;
                }
                if known.handovers.get(id).map(String::as_str) == Some(me) {
                    // Deleted in the claim's transaction.
                    known.handovers.remove(id);
                } else if known
                    .last_owner
                    .get(id)
                    .is_some_and(|o| o != me && !known.nodes.contains_key(o))
                {
                    self.view.count_handover("failover");
                }
                known.last_owner.remove(id);
                tracing::info!(camera = %id, "cluster: this node owns the camera");
            }
        }
        // Cameras no longer in the list.
        for id in running.iter().filter(|id| !cameras.contains_key(*id)) {
            self.runner.stop(id).await;
            if known.owners.get(id).map(String::as_str) == Some(me) {
                self.release_key(client, id).await?;
                known.owners.remove(id);
                self.view.set_owner(id, None);
                known.changed = true;
            }
        }
        known.desired = desired;
        self.publish_view(known);
        Ok(())
    }

    async fn release_key(&self, client: &mut Client, id: &str) -> Result<(), String> {
        let key = self.key("owners", id);
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                self.cfg.node_id.as_str(),
            )])
            .and_then([TxnOp::delete(key, None)]);
        client.txn(txn).await.map_err(|e| e.to_string())?;
        self.view.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
