//! Clusters of duplicates as a forest: each duplicate points to the earliest similar
//! document it shares a key with, always one ingested before it, so every tree's root is
//! its earliest member, the copy kept. A document joins one cluster, never two: connected
//! components would chain two kept copies that are not alike through a third text that
//! resembles both, and removing one of them would change what earlier runs kept, so an
//! incremental run could not agree with a full one.

use std::collections::HashMap;

/// Where a document stands in ingest order, as dedup compares them: (ordinal, handle).
pub type Rank = (u64, u64);

#[derive(Debug, Default)]
pub struct Forest {
    /// Duplicate -> the document it was found similar to.
    parent: HashMap<u64, Rank>,
}

impl Forest {
    /// Records that `doc` is similar to the earlier `to`; of several, the earliest wins.
    pub fn link(&mut self, doc: u64, to: Rank) {
        let parent = self.parent.entry(doc).or_insert(to);
        *parent = (*parent).min(to);
    }

    /// Every member of every cluster -> its root (the kept copy, which maps to itself).
    pub fn clusters(&self) -> HashMap<u64, u64> {
        let mut roots: HashMap<u64, u64> = HashMap::with_capacity(self.parent.len() * 2);
        for &doc in self.parent.keys() {
            let mut path = vec![doc];
            let mut at = doc;
            let root = loop {
                if let Some(&root) = roots.get(&at) {
                    break root;
                }
                match self.parent.get(&at) {
                    Some(&(_, up)) => {
                        path.push(up);
                        at = up;
                    }
                    None => break at,
                }
            };
            roots.extend(path.into_iter().map(|member| (member, root)));
        }
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duplicate_joins_the_tree_of_its_earliest_similar_document() {
        let mut f = Forest::default();
        // 3 is like 1 and 2, which are not alike: it joins 1, the earlier; 2 stays kept.
        f.link(3, (20, 2));
        f.link(3, (10, 1));
        f.link(4, (30, 3));
        f.link(6, (50, 5));
        let clusters = f.clusters();
        assert_eq!([1, 3, 4].map(|d| clusters[&d]), [1, 1, 1], "chains reach their root");
        assert_eq!((clusters.get(&2), clusters[&6], clusters[&5]), (None, 5, 5));
        assert_eq!(clusters.len(), 5);
    }
}
