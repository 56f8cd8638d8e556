//! A report's index of its components by name.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::ComponentRecord;

/// Each component's position by name, built on the first look-up of a
/// large report: looking every component up stays linear overall.
///
/// The table holds positions only, four bytes a component, and compares
/// names through the records: at 100,000 components it stays in cache,
/// where a map keyed by names would not. Built at its final size, it never
/// hashes a name twice. Hashed with foldhash, as the engine's own name
/// indexes (`crate::names`).
#[derive(Clone, Default)]
pub(super) struct NameIndex(OnceLock<(HashTable<u32>, DefaultHashBuilder)>);

/// Below this many components a scan is as fast as a map.
const INDEX_FROM: usize = 32;

impl NameIndex {
    pub(super) fn find(&self, components: &[ComponentRecord], name: &str) -> Option<usize> {
        if components.len() < INDEX_FROM || u32::try_from(components.len()).is_err() {
            return components.iter().position(|c| &*c.name == name);
        }
        let name_at = |at: &u32| &*components[*at as usize].name;
        let (table, hasher) = self.0.get_or_init(|| {
            let hasher = DefaultHashBuilder::default();
            let mut table = HashTable::with_capacity(components.len());
            for (at, c) in (0..).zip(components) {
                // Names in a report are unique: each was claimed once.
                table.insert_unique(hasher.hash_one(&*c.name), at, |at| {
                    hasher.hash_one(name_at(at))
                });
            }
            (table, hasher)
        });
        table
            .find(hasher.hash_one(name), |at| name_at(at) == name)
            .map(|&at| at as usize)
    }
}

/// A cache of the records: it has no say in equality.
impl PartialEq for NameIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NameIndex {}

impl fmt::Debug for NameIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameIndex")
    }
}
