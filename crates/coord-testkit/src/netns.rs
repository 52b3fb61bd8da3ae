//! One network namespace per server, joined by a bridge in the root namespace, so each server
//! is a host of its own and the links between servers can be cut.
//!
//! ```text
//!   root namespace: bridge <tag>b = 10.231.S.254   (clients live here and reach every server)
//!      |                |                |
//!    veth             veth             veth          link down  = the server is cut off from all
//!      |                |                |
//!   ns <tag>n1      ns <tag>n2       ns <tag>n3      blackhole route in ns i to 10.231.S.(j+1)
//!   10.231.S.1      10.231.S.2       10.231.S.3        = no packet from server i reaches server j
//! ```
//!
//! Invariants:
//! - every object is named `ctk<pid hex>x<counter>…`, so two live processes never share a name,
//!   and objects of a dead process are recognised (and swept) by the pid in their name;
//! - the subnet `S` is chosen under an exclusive file lock among the subnets no interface of
//!   the root namespace uses yet, so concurrent ensembles never share an address;
//! - a [`Partition`] only drops server-to-server traffic: the routes are per destination
//!   server address, and clients (10.231.S.254) stay reachable from every server;
//! - everything is deleted on drop.

use crate::Error;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The name prefix of every object this module creates.
const PREFIX: &str = "ctk";
/// The lock serialising subnet choice among processes.
const LOCK_FILE: &str = "/tmp/coord-testkit-netns.lock";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `ip` with `args`; a failure carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Io("run ip (iproute2)".into(), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip` and ignores the outcome (cleanup of what may already be gone).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// A set of blocked server pairs: no packet flows between the two servers of a pair, in
/// either direction. Servers are indices (0-based).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    /// Pairs `(a, b)` with `a < b`.
    pub blocked: BTreeSet<(usize, usize)>,
}

impl Partition {
    /// Blocks every pair of servers on different sides (servers in no side keep every link).
    pub fn split(sides: &[Vec<usize>]) -> Partition {
        let mut p = Partition::default();
        for (k, side) in sides.iter().enumerate() {
            for other in &sides[k + 1..] {
                for &a in side {
                    for &b in other {
                        p.block(a, b);
                    }
                }
            }
        }
        p
    }

    /// Cuts server `i` off from the other `n - 1`.
    pub fn isolate(n: usize, i: usize) -> Partition {
        let rest: Vec<usize> = (0..n).filter(|j| *j != i).collect();
        Partition::split(&[vec![i], rest])
    }

    /// Two sides that cannot see each other and one `bridge` server that sees both.
    pub fn bridge(left: Vec<usize>, bridge: usize, right: Vec<usize>) -> Partition {
        debug_assert!(!left.contains(&bridge) && !right.contains(&bridge));
        Partition::split(&[left, right])
    }

    /// Blocks the pair `a`–`b`.
    pub fn block(&mut self, a: usize, b: usize) {
        if a != b {
            self.blocked.insert((a.min(b), a.max(b)));
        }
    }

    /// Whether `a` and `b` can talk.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        a == b || !self.blocked.contains(&(a.min(b), a.max(b)))
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self
            .blocked
            .iter()
            .map(|(a, b)| format!("{}-{}", a + 1, b + 1))
            .collect();
        write!(f, "blocked {{{}}}", pairs.join(" "))
    }
}

/// The namespaces, links and bridge of one ensemble; see the module doc.
pub struct Netns {
    names: Vec<String>,
    bridge: String,
    links: Vec<String>,
    subnet: u8,
    /// Blackhole routes in place: (in the namespace of server `.0`, to server `.1`).
    routes: BTreeSet<(usize, usize)>,
}

impl std::fmt::Debug for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netns")
            .field("names", &self.names)
            .field("bridge", &self.bridge)
            .field("subnet", &format_args!("10.231.{}.0/24", self.subnet))
            .finish()
    }
}

/// An exclusive `flock` held until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &str) -> Result<FileLock, Error> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::Io(format!("open {path}"), e))?;
        // SAFETY: flock on a file descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::Io(
                format!("flock {path}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor locked in `take`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The pid in an object name `ctk<pid hex>x…`, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (hex, _) = rest.split_once('x')?;
    u32::from_str_radix(hex, 16).ok()
}

/// Deletes namespaces and bridges left behind by processes that no longer exist (killed
/// before their drop ran), and kills the servers still running inside those namespaces.
pub fn sweep_stale() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if owner_pid(name).is_some_and(|p| !crate::sweep::pid_alive(p)) {
                // Only processes inside this namespace, which belonged to the dead owner.
                let pids = ip(&["netns", "pids", name]).unwrap_or_default();
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    // SAFETY: kill(2) on a pid listed as living in an orphaned namespace of
                    // this kit; no memory is involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                ip_quiet(&["netns", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]) {
        for line in list.lines() {
            // "12: ctk1a2bx0b: <BROADCAST,...>"
            let name = line.split(':').nth(1).unwrap_or("").trim();
            if owner_pid(name).is_some_and(|p| !crate::sweep::pid_alive(p)) {
                ip_quiet(&["link", "del", name]);
            }
        }
    }
}

/// The third octets of every 10.231.X.Y address in the root namespace.
fn subnets_in_use() -> Result<BTreeSet<u8>, Error> {
    let text = ip(&["-o", "-4", "addr", "show"])?;
    Ok(text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("10.231."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect())
}

impl Netns {
    /// Creates `n` namespaces joined by a fresh bridge. Needs root and iproute2.
    pub fn create(n: usize) -> Result<Netns, Error> {
        sweep_stale();
        let tag = format!(
            "{PREFIX}{:x}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut netns = Netns {
            names: Vec::new(),
            bridge: format!("{tag}b"),
            links: Vec::new(),
            subnet: 0,
            routes: BTreeSet::new(),
        };
        // From here on, drop deletes whatever was made, also on an early error.
        {
            let _lock = FileLock::take(LOCK_FILE)?;
            let used = subnets_in_use()?;
            let start = (std::process::id() % 200) as u16 + 20;
            let subnet = (0..254u16)
                .map(|k| ((start + k) % 254 + 1) as u8)
                .find(|s| !used.contains(s))
                .ok_or_else(|| Error::Setup("no free 10.231.X.0/24 subnet".into()))?;
            ip(&["link", "add", &netns.bridge, "type", "bridge"])?;
            ip(&[
                "addr",
                "add",
                &format!("10.231.{subnet}.254/24"),
                "dev",
                &netns.bridge,
            ])?;
            netns.subnet = subnet;
        }
        ip(&["link", "set", &netns.bridge, "up"])?;
        for i in 1..=n {
            let ns = format!("{tag}n{i}");
            let link = format!("{tag}v{i}");
            ip(&["netns", "add", &ns])?;
            netns.names.push(ns.clone());
            ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            netns.links.push(link.clone());
            ip(&["link", "set", &link, "master", &netns.bridge, "up"])?;
            let addr = format!("10.231.{}.{i}/24", netns.subnet);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(netns)
    }

    /// The address of server `i` (0-based).
    pub fn host(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    /// The namespace of server `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// How many namespaces there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Cuts server `i` off from everyone, clients included (its link to the bridge goes down).
    pub fn isolate(&self, i: usize) -> Result<(), Error> {
        ip(&["link", "set", &self.links[i], "down"]).map(drop)
    }

    /// Takes server `i`'s link up again.
    pub fn heal(&self, i: usize) -> Result<(), Error> {
        ip(&["link", "set", &self.links[i], "up"]).map(drop)
    }

    /// Replaces the server-to-server partition in place with `p` (clients keep reaching
    /// every server). Routes already in place and still wanted are kept.
    pub fn partition(&mut self, p: &Partition) -> Result<(), Error> {
        let mut wanted = BTreeSet::new();
        for &(a, b) in &p.blocked {
            if a >= self.names.len() || b >= self.names.len() {
                return Err(Error::Setup(format!("partition {p}: no such server")));
            }
            wanted.insert((a, b));
            wanted.insert((b, a));
        }
        let stale: Vec<(usize, usize)> = self.routes.difference(&wanted).copied().collect();
        for (from, to) in stale {
            let dest = format!("{}/32", self.host(to));
            ip(&["-n", &self.names[from], "route", "del", "blackhole", &dest])?;
            self.routes.remove(&(from, to));
        }
        let new: Vec<(usize, usize)> = wanted.difference(&self.routes).copied().collect();
        for (from, to) in new {
            let dest = format!("{}/32", self.host(to));
            ip(&["-n", &self.names[from], "route", "add", "blackhole", &dest])?;
            self.routes.insert((from, to));
        }
        Ok(())
    }

    /// The partition in place.
    pub fn current(&self) -> Partition {
        let mut p = Partition::default();
        for &(a, b) in &self.routes {
            p.block(a, b);
        }
        p
    }

    /// Removes every partition route and takes every link up.
    pub fn heal_all(&mut self) -> Result<(), Error> {
        let mut first_err = None;
        for i in 0..self.names.len() {
            let flushed = ip(&["-n", &self.names[i], "route", "flush", "type", "blackhole"]);
            let up = self.heal(i);
            if let Err(e) = flushed.and(up) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => {
                self.routes.clear();
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Runs `f` on a thread that has entered server `i`'s namespace (to reach it while it is
    /// cut off from the root namespace).
    pub fn run_inside<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let path = format!("/var/run/netns/{}", self.names[i]);
        let joined = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file =
                std::fs::File::open(&path).map_err(|e| Error::Io(format!("open {path}"), e))?;
            // SAFETY: setns on this (fresh, short-lived) thread only, with a valid namespace
            // fd; no other thread's namespace changes.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(Error::Io(
                    format!("setns {path}"),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join();
        match joined {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            ip_quiet(&["netns", "del", ns]);
        }
        ip_quiet(&["link", "del", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_block_both_directions_and_only_across_sides() {
        let p = Partition::split(&[vec![0, 1], vec![2, 3, 4]]);
        assert_eq!(p.blocked.len(), 6);
        assert!(!p.connected(1, 3) && !p.connected(3, 1));
        assert!(p.connected(0, 1) && p.connected(2, 4));
        let b = Partition::bridge(vec![0], 1, vec![2]);
        assert!(p.connected(0, 0));
        assert!(b.connected(0, 1) && b.connected(1, 2) && !b.connected(0, 2));
        let iso = Partition::isolate(5, 3);
        assert_eq!(iso.blocked.len(), 4);
        assert!((0..5).all(|j| j == 3 || !iso.connected(3, j)));
        assert_eq!(iso.to_string(), "blocked {1-4 2-4 3-4 4-5}");
    }

    #[test]
    fn object_names_carry_the_owner_pid() {
        assert_eq!(owner_pid("ctk1a2bx0n3"), Some(0x1a2b));
        assert_eq!(owner_pid("ctk1a2bx12b"), Some(0x1a2b));
        assert_eq!(owner_pid("cz123n1"), None);
        assert_eq!(owner_pid("ctkzzx1"), None);
    }
}
