//! Names of parts: which are valid, and [`NameIndex`], where each named
//! part sits in its list.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable, hash_table};

use crate::error::Error;

/// A named part registered with the lifecycle.
pub(crate) type Named<T> = (Arc<str>, Arc<T>);

/// Refuses a name that is empty or holds a control character or `/`: names
/// appear in errors, logs, reports and probe lines and paths, where such a
/// name could forge a line or a path.
pub(crate) fn validate_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || has_control_or_slash(name.as_bytes()) {
        // Not set as the error's component: it is what must not be printed
        // as is.
        Err(Error::config(format!(
            "invalid {what} name {name:?}: names must be non-empty, without control characters or `/`"
        )))
    } else {
        Ok(())
    }
}

/// Whether UTF-8 `bytes` hold a control character (Unicode's `Cc`, as
/// [`char::is_control`]: U+0000-U+001F, U+007F-U+009F) or `/`, byte by
/// byte: U+0080-U+009F are the only two-byte ones, `0xC2` then
/// `0x80`-`0x9F`, and no other character's encoding holds a byte below
/// `0x80`.
fn has_control_or_slash(bytes: &[u8]) -> bool {
    let mut after_c2 = false;
    for &b in bytes {
        if b < 0x20 || b == 0x7F || b == b'/' || (after_c2 && b <= 0x9F) {
            return true;
        }
        after_c2 = b == 0xC2;
    }
    false
}

/// Positions of named parts, by name, for a list the caller keeps: the
/// names are compared through that list, never copied.
///
/// Each slot is a position and 32 bits of the name's hash, eight bytes a
/// name: a large index stays in cache where a set of names would not (at
/// 100,000 names, about one megabyte against several), and it grows
/// without hashing any name again.
#[derive(Default)]
pub(crate) struct NameIndex {
    table: HashTable<Slot>,
    /// foldhash, seeded per index: names are the program's own, and the
    /// index only finds them again (duplicates, look-ups), so a fast hash
    /// of good quality does; SipHash's resistance to chosen keys buys
    /// nothing here and cost most of an insertion.
    hasher: DefaultHashBuilder,
}

#[derive(Clone, Copy)]
struct Slot {
    at: u32,
    hash: u32,
}

impl NameIndex {
    /// Records `name` at position `at`, unless the index already holds it:
    /// then the position it holds. `name_at` reads a recorded position's
    /// name from the caller's list.
    pub(crate) fn insert<'a>(
        &mut self,
        name: &str,
        at: u32,
        name_at: impl Fn(u32) -> &'a str,
    ) -> Result<(), u32> {
        let hash = self.hash(name);
        match self.table.entry(
            spread(hash),
            |s| s.hash == hash && name_at(s.at) == name,
            |s| spread(s.hash),
        ) {
            hash_table::Entry::Occupied(found) => Err(found.get().at),
            hash_table::Entry::Vacant(slot) => {
                slot.insert(Slot { at, hash });
                Ok(())
            }
        }
    }

    /// The position of `name`, if the index holds it.
    pub(crate) fn get<'a>(&self, name: &str, name_at: impl Fn(u32) -> &'a str) -> Option<u32> {
        let hash = self.hash(name);
        self.table
            .find(spread(hash), |s| s.hash == hash && name_at(s.at) == name)
            .map(|s| s.at)
    }

    /// Forgets `name`; returns its position if the index held it.
    pub(crate) fn remove<'a>(
        &mut self,
        name: &str,
        name_at: impl Fn(u32) -> &'a str,
    ) -> Option<u32> {
        let hash = self.hash(name);
        match self
            .table
            .find_entry(spread(hash), |s| s.hash == hash && name_at(s.at) == name)
        {
            Ok(found) => Some(found.remove().0.at),
            Err(_) => None,
        }
    }

    /// Makes room for `additional` more names.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |s| spread(s.hash));
    }

    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }

    fn hash(&self, name: &str) -> u32 {
        // The high half of the hash; truncation is the point.
        (self.hasher.hash_one(name) >> 32) as u32
    }
}

/// The table's hash of a slot: the 32 bits kept, in the high half too,
/// where the table takes each slot's tag from.
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte loop refuses exactly the characters `char::is_control` and
    /// `/` name, every character tried alone and between others.
    #[test]
    fn a_name_is_refused_for_each_control_character_and_slash_only() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let refused = c.is_control() || c == '/';
            for name in [c.to_string(), format!("a{c}b"), format!("\u{e9}{c}\u{a0}")] {
                assert_eq!(validate_name(&name, "part").is_err(), refused, "{name:?}");
            }
        }
        assert!(validate_name("", "part").is_err());
        assert!(validate_name("caf\u{e9}-\u{a0}x\u{7e}", "part").is_ok());
    }

    #[test]
    fn refuses_a_name_it_holds_and_nothing_else() {
        let names: Vec<String> = (0..1000).map(|i| format!("part{i}")).collect();
        let mut index = NameIndex::default();
        for (at, name) in (0..).zip(&names) {
            assert_eq!(index.insert(name, at, |j| &names[j as usize]), Ok(()));
        }
        for (at, name) in (0..).zip(&names) {
            assert_eq!(index.insert(name, 1000, |j| &names[j as usize]), Err(at));
        }
        for (at, name) in (0..).zip(&names) {
            assert_eq!(index.get(name, |j| &names[j as usize]), Some(at));
        }
        assert_eq!(index.get("part1000", |j| &names[j as usize]), None);
        assert_eq!(index.get("", |j| &names[j as usize]), None);
        assert_eq!(index.remove("part7", |j| &names[j as usize]), Some(7));
        assert_eq!(index.remove("part7", |j| &names[j as usize]), None);
        assert_eq!(index.get("part7", |j| &names[j as usize]), None);
        assert_eq!(index.get("part8", |j| &names[j as usize]), Some(8));
        index.clear();
        assert_eq!(index.insert("part7", 0, |j| &names[j as usize]), Ok(()));
    }
}
