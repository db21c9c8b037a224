//! Connected components of duplicate pairs (union-find) over document handles. Only
//! documents that appear in a pair are held, so memory follows the number of duplicates,
//! not the size of the corpus.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Components {
    index: HashMap<u64, u32>,
    docs: Vec<u64>,
    parent: Vec<u32>,
}

impl Components {
    fn node(&mut self, doc: u64) -> u32 {
        let next = self.docs.len() as u32;
        let n = *self.index.entry(doc).or_insert(next);
        if n == next {
            self.docs.push(doc);
            self.parent.push(n);
        }
        n
    }

    fn root(&mut self, mut n: u32) -> u32 {
        while self.parent[n as usize] != n {
            // Path halving: every other node on the way points to its grandparent.
            let grandparent = self.parent[self.parent[n as usize] as usize];
            self.parent[n as usize] = grandparent;
            n = grandparent;
        }
        n
    }

    /// Records that `a` and `b` are duplicates.
    pub fn union(&mut self, a: u64, b: u64) {
        let (a, b) = (self.node(a), self.node(b));
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent[ra as usize] = rb;
        }
    }

    /// Every document that was in a pair, with a document that names its component.
    pub fn members(mut self) -> Vec<(u64, u64)> {
        (0..self.docs.len() as u32)
            .map(|n| {
                let root = self.root(n);
                (self.docs[n as usize], self.docs[root as usize])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_join_into_one_component() {
        let mut c = Components::default();
        c.union(4, 3);
        c.union(24, 25);
        c.union(3, 2);
        c.union(2, 4);
        c.union(5, 4);
        let members: HashMap<u64, u64> = c.members().into_iter().collect();
        assert_eq!(members.len(), 6);
        for doc in [2, 3, 4, 5] {
            assert_eq!(members[&doc], members[&2]);
        }
        assert_eq!(members[&24], members[&25]);
        assert_ne!(members[&24], members[&2]);
        assert!(!members.contains_key(&1));
    }
}
