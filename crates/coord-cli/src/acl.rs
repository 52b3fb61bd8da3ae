//! ACLs as text: `scheme:id:perms`, perms as the letters `crwda`
//! (create, read, write, delete, admin). The id may itself contain `:` (`digest:bob:xyz=`,
//! `ip:::1`), so the scheme ends at the first `:` and the perms start after the last.

use coord_client::{Acl, Id, perms};

/// The permission letters, in the order they are printed.
const LETTERS: [(char, u32); 5] = [
    ('c', perms::CREATE),
    ('r', perms::READ),
    ('w', perms::WRITE),
    ('d', perms::DELETE),
    ('a', perms::ADMIN),
];

/// Parses permission letters (any order, each at most once).
pub fn parse_perms(s: &str) -> Result<u32, String> {
    let mut bits = 0;
    for ch in s.chars() {
        let Some((_, bit)) = LETTERS.iter().find(|(l, _)| *l == ch.to_ascii_lowercase()) else {
            return Err(format!(
                "unknown permission {ch:?} in {s:?} (use the letters crwda)"
            ));
        };
        if bits & bit != 0 {
            return Err(format!("permission {ch:?} repeated in {s:?}"));
        }
        bits |= bit;
    }
    if bits == 0 {
        return Err("no permissions given (use the letters crwda)".to_string());
    }
    Ok(bits)
}

/// Prints permission bits as letters in `crwda` order; unknown bits are ignored.
pub fn format_perms(bits: u32) -> String {
    LETTERS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(l, _)| *l)
        .collect()
}

/// Parses one `scheme:id:perms` entry.
pub fn parse_entry(s: &str) -> Result<Acl, String> {
    let s = s.trim();
    let (scheme, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("bad ACL entry {s:?}: expected scheme:id:perms"))?;
    let (id, letters) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("bad ACL entry {s:?}: expected scheme:id:perms"))?;
    if scheme.is_empty() {
        return Err(format!("bad ACL entry {s:?}: empty scheme"));
    }
    let perms = parse_perms(letters).map_err(|e| format!("bad ACL entry {s:?}: {e}"))?;
    Ok(Acl {
        perms,
        id: Id::new(scheme, id),
    })
}

/// Parses a comma-separated list of entries (`world:anyone:r,digest:bob:xyz=:crwda`).
pub fn parse_list(s: &str) -> Result<Vec<Acl>, String> {
    let entries: Vec<&str> = s.split(',').filter(|e| !e.trim().is_empty()).collect();
    if entries.is_empty() {
        return Err("empty ACL".to_string());
    }
    entries.into_iter().map(parse_entry).collect()
}

/// Prints one entry as `scheme:id:perms`.
pub fn format_entry(acl: &Acl) -> String {
    format!(
        "{}:{}:{}",
        acl.id.scheme,
        acl.id.id,
        format_perms(acl.perms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_round_trip() {
        assert_eq!(parse_perms("crwda").unwrap(), perms::ALL);
        assert_eq!(parse_perms("ar").unwrap(), perms::ADMIN | perms::READ);
        assert_eq!(format_perms(perms::ALL), "crwda");
        assert_eq!(format_perms(perms::READ | perms::DELETE), "rd");
        for bits in 1..=perms::ALL {
            assert_eq!(parse_perms(&format_perms(bits)).unwrap(), bits);
        }
        assert!(parse_perms("").is_err());
        assert!(parse_perms("rx").is_err());
        assert!(parse_perms("rr").is_err());
    }

    #[test]
    fn entries_with_colons_in_the_id() {
        let list =
            parse_list("world:anyone:r,digest:bob:xyz=:crwda, ip:::1:rw,auth::cdrwa").unwrap();
        assert_eq!(
            list[0],
            Acl {
                perms: perms::READ,
                id: Id::new("world", "anyone")
            }
        );
        assert_eq!(
            list[1],
            Acl {
                perms: perms::ALL,
                id: Id::new("digest", "bob:xyz=")
            }
        );
        assert_eq!(
            list[2],
            Acl {
                perms: perms::READ | perms::WRITE,
                id: Id::new("ip", "::1")
            }
        );
        assert_eq!(
            list[3],
            Acl {
                perms: perms::ALL,
                id: Id::new("auth", "")
            }
        );
        let printed: Vec<String> = list.iter().map(format_entry).collect();
        assert_eq!(
            printed,
            [
                "world:anyone:r",
                "digest:bob:xyz=:crwda",
                "ip:::1:rw",
                "auth::crwda"
            ]
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            ",",
            "world",
            "world:anyone",
            ":anyone:r",
            "world:anyone:q",
            "world:anyone:",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
    }
}
