//! ACLs: validation of a requested ACL (ZooKeeper's `fixupACL`), permission checks, the
//! `digest` scheme's id derivation, and the interner that shares equal ACLs between nodes.
//!
//! Invariants:
//! - every ACL stored on a node passed [`fixup_acl`]: non-empty, no `auth` entries (expanded
//!   into the creator's ids), known schemes with well-formed ids, perms within
//!   [`perms::ALL`], no duplicate entries;
//! - every node's [`AclRef`] is the interner's copy while the node is in the tree.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use coord_proto::{Acl, ErrorCode, Id, perms};
use sha1::{Digest as _, Sha1};

use crate::TreeError;

/// The identity that bypasses every ACL check.
fn is_super(id: &Id) -> bool {
    id.scheme == "super" && id.id.is_empty()
}

/// Validates a requested ACL and expands `auth` entries into the caller's authenticated
/// identities, as ZooKeeper's `PrepRequestProcessor.fixupACL`.
///
/// `auth:` entries become one entry per identity in `auth` whose scheme is `digest` or `x509`
/// (the schemes that prove who the caller is; `ip` and `world` do not), with the same perms;
/// if there is none the ACL is refused. Duplicate entries are dropped, first one kept.
pub(crate) fn fixup_acl(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for entry in acl {
        if entry.perms & !perms::ALL != 0 {
            return Err(ErrorCode::InvalidAcl);
        }
        if entry.id.scheme == "auth" {
            let mut added = false;
            for id in auth
                .iter()
                .filter(|id| id.scheme == "digest" || id.scheme == "x509")
            {
                push(Acl {
                    perms: entry.perms,
                    id: id.clone(),
                });
                added = true;
            }
            if !added {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if valid_id(&entry.id) {
            push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// Whether `id` is well formed for its scheme (ZooKeeper's `AuthenticationProvider.isValid`).
fn valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        "world" => id.id == "anyone",
        // `user:base64hash`: one ':' and a non-empty hash, as Java's `split(":").length == 2`.
        "digest" => {
            matches!(id.id.split_once(':'), Some((_, hash)) if !hash.is_empty() && !hash.contains(':'))
        }
        "ip" => parse_cidr(&id.id).is_some(),
        "x509" => !id.id.is_empty(),
        _ => false,
    }
}

/// Parses `addr` or `addr/bits` (IPv4 or IPv6). `None` when malformed or bits out of range.
fn parse_cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) && b.len() <= 3 => {
            b.parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    (bits <= max).then_some((addr, bits))
}

/// Whether the client address `client` lies in the ACL entry's network `entry`.
fn ip_matches(entry: &str, client: &str) -> bool {
    let (Some((net, bits)), Ok(client)) = (parse_cidr(entry), client.parse::<IpAddr>()) else {
        return false;
    };
    match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(c) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(c)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(c) & mask
        }
        _ => false,
    }
}

/// Whether `auth` holds any of the permission bits in `perm` on a node with ACL `acl`
/// (ZooKeeper's `checkACL`: an entry grants when it shares a bit with `perm`).
/// The super identity passes every check; an empty ACL grants everything, as in ZooKeeper.
pub(crate) fn check_acl(acl: &[Acl], perm: u32, auth: &[Id]) -> bool {
    if auth.iter().any(is_super) || acl.is_empty() {
        return true;
    }
    acl.iter()
        .filter(|a| a.perms & perm != 0)
        .any(|a| match a.id.scheme.as_str() {
            "world" => a.id.id == "anyone",
            "digest" | "x509" => auth.contains(&a.id),
            "ip" => auth
                .iter()
                .any(|id| id.scheme == "ip" && ip_matches(&a.id.id, &id.id)),
            _ => false,
        })
}

/// The `digest` scheme id for `user:password`: `user:` + base64(sha1(`user:password`)),
/// exactly ZooKeeper's `DigestAuthenticationProvider.generateDigest`.
pub fn digest_id(user_password: &str) -> Result<String, TreeError> {
    let Some((user, _)) = user_password.split_once(':') else {
        return Err(TreeError::BadCredentials);
    };
    let hash = Sha1::digest(user_password.as_bytes());
    Ok(format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    ))
}

/// A node's ACL as the tree holds it: one shared, reference-counted list (a thin pointer, so a
/// node pays 8 bytes for it).
pub(crate) type AclRef = Arc<Vec<Acl>>;

/// Shares equal ACLs between nodes.
///
/// Why an interned [`AclRef`] rather than ZooKeeper's `ReferenceCountedACLCache` (a `long` id
/// per node and a refcounted id table): the few distinct ACLs of a real tree are stored once
/// either way, and the Arc's own count replaces the table's hand-kept refcounts (a classic
/// source of leaks in ZooKeeper). A node pays 8 bytes, as with an id, and reads need no table
/// lookup. Snapshots still write an id table (see `snapshot.rs`).
#[derive(Debug, Default, Clone)]
pub(crate) struct AclInterner {
    set: HashMap<Vec<Acl>, AclRef>,
}

impl AclInterner {
    /// The shared copy of `acl`.
    pub fn intern(&mut self, acl: &[Acl]) -> AclRef {
        if let Some(found) = self.set.get(acl) {
            return found.clone();
        }
        let arc: AclRef = Arc::new(acl.to_vec());
        self.set.insert(acl.to_vec(), arc.clone());
        arc
    }

    /// Makes `acl` (from a node coming back into the tree) the shared copy, or swaps it for
    /// an equal shared one.
    pub fn reintern(&mut self, acl: AclRef) -> AclRef {
        if let Some(found) = self.set.get(acl.as_slice()) {
            return found.clone();
        }
        self.set.insert(acl.to_vec(), acl.clone());
        acl
    }

    /// Called as a node leaves the tree or drops `acl`: forgets the entry if that node held
    /// the last reference besides the interner's own.
    pub fn release(&mut self, acl: &AclRef) {
        if Arc::strong_count(acl) == 2 {
            self.set.remove(acl.as_slice());
        }
    }

    /// Forgets the ACLs no node holds any more (see [`AclInterner::release`]: a node that
    /// left the tree while a snapshot view still shared its core could not release its ACL).
    pub fn prune(&mut self) {
        self.set.retain(|_, acl| Arc::strong_count(acl) > 1);
    }

    /// Number of distinct ACLs held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: u32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(
            parse_cidr("1.2.3.4"),
            Some(("1.2.3.4".parse().unwrap(), 32))
        );
        assert_eq!(parse_cidr("::1"), Some(("::1".parse().unwrap(), 128)));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "1.2.3",
            "::1/129",
            "x/8",
            "1.2.3.4/8/8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ip_masks() {
        assert!(ip_matches("10.0.0.0/8", "10.255.1.2"));
        assert!(!ip_matches("10.0.0.0/8", "11.0.0.1"));
        assert!(ip_matches("0.0.0.0/0", "8.8.8.8"));
        assert!(ip_matches("1.2.3.4", "1.2.3.4"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.5"));
        assert!(ip_matches("2001:db8::/32", "2001:db8:1::7"));
        assert!(!ip_matches("2001:db8::/32", "2001:db9::7"));
        assert!(ip_matches("::/0", "::1"));
        assert!(!ip_matches("10.0.0.0/8", "::ffff:10.0.0.1"));
        assert!(!ip_matches("10.0.0.0/8", "not-an-ip"));
    }

    #[test]
    fn fixup_dedups_and_expands() {
        let auth = [
            Id::new("digest", "u:h"),
            Id::new("ip", "1.2.3.4"),
            Id::new("x509", "CN=a"),
        ];
        let got = fixup_acl(&[acl(31, "auth", ""), acl(31, "digest", "u:h")], &auth).unwrap();
        assert_eq!(got, vec![acl(31, "digest", "u:h"), acl(31, "x509", "CN=a")]);
        assert_eq!(
            fixup_acl(&[acl(1, "auth", "")], &[Id::new("ip", "1.2.3.4")]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[acl(32, "world", "anyone")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        for bad in [
            ("world", "bob"),
            ("digest", "nocolon"),
            ("digest", "u:"),
            ("digest", "a:b:c"),
            ("ip", "1.2.3.4/40"),
            ("x509", ""),
            ("sasl", "x"),
        ] {
            assert_eq!(
                fixup_acl(&[acl(1, bad.0, bad.1)], &[]),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn interner_shares_and_forgets() {
        let mut i = AclInterner::default();
        let a = i.intern(&Acl::open_unsafe());
        let b = i.intern(&Acl::open_unsafe());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 1);
        i.release(&a);
        drop(a);
        assert_eq!(i.len(), 1, "b still holds it");
        i.release(&b);
        drop(b);
        assert_eq!(i.len(), 0);
    }
}
