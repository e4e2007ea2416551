//! Faults on an [`OwnCluster`]: which node serves a slot, SIGKILL a node, start
//! it again, wait for a failover or for a replica to catch up, move one slot.

use std::time::{Duration, Instant};

use super::OwnCluster;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub port: u16,
    pub flags: String,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges served (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl Node {
    pub fn is_master(&self) -> bool {
        self.flags.split(',').any(|flag| flag == "master")
    }

    /// Marked failing (`fail`, or `fail?` not yet agreed on).
    pub fn is_failing(&self) -> bool {
        self.flags
            .split(',')
            .any(|flag| flag == "fail" || flag == "fail?")
    }

    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&slot))
    }
}

fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|address| address.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or(0);
            let slots = fields[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .map(|range| match range.split_once('-') {
                    Some((start, end)) => (start.parse().unwrap(), end.parse().unwrap()),
                    None => (range.parse().unwrap(), range.parse().unwrap()),
                })
                .collect();
            Node {
                id: fields[0].to_owned(),
                port,
                flags: fields[2].to_owned(),
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                slots,
            }
        })
        .collect()
}

/// A plain connection to one node, failing fast when it is down.
pub fn node(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let connection = client.get_connection_with_timeout(Duration::from_millis(500))?;
    connection.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(connection)
}

/// One command on one node.
pub fn on_node<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut node(port)?)
}

/// The value of `field` in an `INFO`/`CLUSTER INFO` reply.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    })
}

fn poll<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl OwnCluster {
    pub fn ports(&self) -> std::ops::Range<u16> {
        let base = self.base;
        base..base + 6
    }

    fn run(&self, action: &str, port: u16) {
        let output = self
            .command(action)
            .arg(port.to_string())
            .output()
            .expect("run scripts/redis-cluster.sh");
        assert!(
            output.status.success(),
            "redis-cluster.sh {action} {port} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// SIGKILL the node on `port` (no shutdown, no last write).
    pub fn kill_node(&self, port: u16) {
        self.run("kill-node", port);
    }

    /// Starts the node on `port` again, from its nodes.conf and AOF.
    pub fn start_node(&self, port: u16) {
        self.run("start-node", port);
    }

    /// `CLUSTER NODES` as the first node that answers, other than `except`, sees it.
    pub fn nodes_except(&self, except: Option<u16>) -> Vec<Node> {
        for port in self.ports().filter(|port| Some(*port) != except) {
            if let Ok(text) = on_node::<String>(port, &["CLUSTER", "NODES"]) {
                return parse_nodes(&text);
            }
        }
        panic!("no node of the cluster on {} answers", self.base);
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.nodes_except(None)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn key_slot(&self, key: &str) -> u16 {
        for port in self.ports() {
            if let Ok(slot) = on_node(port, &["CLUSTER", "KEYSLOT", key]) {
                return slot;
            }
        }
        panic!("no node answers CLUSTER KEYSLOT");
    }

    /// The master serving `slot`, as the nodes other than `except` see it.
    pub fn master_of(&self, slot: u16, except: Option<u16>) -> Node {
        self.nodes_except(except)
            .into_iter()
            .find(|node| node.is_master() && node.serves(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// After `killed` (the master of `slot`) was killed: waits until every other
    /// node sees another master serving `slot` and says `cluster_state:ok`, and
    /// returns that master.
    pub fn wait_for_failover(&self, slot: u16, killed: u16, limit: Duration) -> Node {
        poll(
            &format!("a replica to take slot {slot} over from {killed}"),
            limit,
            || {
                let mut master = None;
                for port in self.ports().filter(|port| *port != killed) {
                    let text = on_node::<String>(port, &["CLUSTER", "NODES"]).ok()?;
                    let info = on_node::<String>(port, &["CLUSTER", "INFO"]).ok()?;
                    if info_field(&info, "cluster_state").as_deref() != Some("ok") {
                        return None;
                    }
                    let serving = parse_nodes(&text)
                        .into_iter()
                        .find(|node| node.is_master() && node.serves(slot) && !node.is_failing())?;
                    if serving.port == killed {
                        return None;
                    }
                    match &master {
                        None => master = Some(serving),
                        Some(seen) if seen.id == serving.id => {}
                        Some(_) => return None,
                    }
                }
                master
            },
        )
    }

    /// Waits until the node on `port` is a replica with its link to its master
    /// up and in sync, and that master counts it among its replicas.
    pub fn wait_for_replica(&self, port: u16, limit: Duration) {
        poll(
            &format!("{port} to be an up-to-date replica"),
            limit,
            || {
                let info = on_node::<String>(port, &["INFO", "replication"]).ok()?;
                if info_field(&info, "role").as_deref() != Some("slave")
                    || info_field(&info, "master_link_status").as_deref() != Some("up")
                    || info_field(&info, "master_sync_in_progress").as_deref() != Some("0")
                {
                    return None;
                }
                let master: u16 = info_field(&info, "master_port")?.parse().ok()?;
                let master_info = on_node::<String>(master, &["INFO", "replication"]).ok()?;
                let replicas: usize = info_field(&master_info, "connected_slaves")?.parse().ok()?;
                let state = on_node::<String>(port, &["CLUSTER", "INFO"]).ok()?;
                (replicas >= 1 && info_field(&state, "cluster_state").as_deref() == Some("ok"))
                    .then_some(())
            },
        )
    }

    /// Moves `slot` with its keys from master `from` to master `to` the way
    /// `redis-cli --cluster reshard` does, holding the migrating state for
    /// `hold` before and after moving the keys (a reshard of many slots keeps
    /// each in that state while the keys before it move).
    pub fn move_slot(&self, slot: u16, from: &Node, to: &Node, hold: Duration) {
        let slot_text = slot.to_string();
        let ok = |port: u16, args: &[&str]| {
            let _: String =
                on_node(port, args).unwrap_or_else(|error| panic!("{args:?} on {port}: {error}"));
        };
        ok(
            to.port,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from.id],
        );
        ok(
            from.port,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to.id],
        );
        std::thread::sleep(hold);
        loop {
            let keys: Vec<String> =
                on_node(from.port, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "10"])
                    .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            // One key per MIGRATE, as a reshard's batches may split a slot's keys.
            for key in keys {
                let to_port = to.port.to_string();
                let _: redis::Value = on_node(
                    from.port,
                    &[
                        "MIGRATE",
                        "127.0.0.1",
                        &to_port,
                        "",
                        "0",
                        "5000",
                        "KEYS",
                        &key,
                    ],
                )
                .expect("MIGRATE");
                std::thread::sleep(hold / 4);
            }
        }
        std::thread::sleep(hold);
        // The new owner first, then the old one, then everyone (as redis-cli does).
        ok(to.port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to.id]);
        ok(
            from.port,
            &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to.id],
        );
        for node in self.nodes() {
            if node.is_master() && node.port != to.port && node.port != from.port {
                let _: redis::RedisResult<String> = on_node(
                    node.port,
                    &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to.id],
                );
            }
        }
    }
}
