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

    /// The document that names the component of `doc`, if `doc` was in a pair.
    pub fn component(&mut self, doc: u64) -> Option<u64> {
        let n = *self.index.get(&doc)?;
        let root = self.root(n);
        Some(self.docs[root as usize])
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
        let two = c.component(2);
        assert!(two.is_some());
        for doc in [3, 4, 5] {
            assert_eq!(c.component(doc), two);
        }
        assert_eq!(c.component(24), c.component(25));
        assert_ne!(c.component(24), two);
        assert_eq!(c.component(1), None);
    }
}
