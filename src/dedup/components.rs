//! Connected components of duplicate pairs (union-find). Only ids that appear in a pair
//! are held, so memory follows the number of duplicates, not the size of the corpus.
//! Each component's representative is its smallest id: the same input always keeps the
//! same document, whatever order the pairs arrive in.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Components {
    index: HashMap<String, u32>,
    ids: Vec<String>,
    parent: Vec<u32>,
}

impl Components {
    fn node(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.index.get(id) {
            return n;
        }
        let n = self.ids.len() as u32;
        self.index.insert(id.to_string(), n);
        self.ids.push(id.to_string());
        self.parent.push(n);
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
    pub fn union(&mut self, a: &str, b: &str) {
        let (a, b) = (self.node(a), self.node(b));
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return;
        }
        // The smaller id becomes the root, so the root is the component's smallest id.
        if self.ids[ra as usize] < self.ids[rb as usize] {
            self.parent[rb as usize] = ra;
        } else {
            self.parent[ra as usize] = rb;
        }
    }

    /// Every id that was in a pair, with its component's representative, sorted by id.
    pub fn members(mut self) -> Vec<(String, String)> {
        let roots: Vec<u32> = (0..self.ids.len() as u32).map(|n| self.root(n)).collect();
        let mut members: Vec<(String, String)> =
            roots.iter().enumerate().map(|(n, &root)| (self.ids[n].clone(), self.ids[root as usize].clone())).collect();
        members.sort_unstable();
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_join_and_the_smallest_id_represents() {
        let mut c = Components::default();
        c.union("d", "c");
        c.union("x", "y");
        c.union("c", "b");
        c.union("b", "d");
        c.union("e", "d");
        let members = c.members();
        let rep = |id: &str| members.iter().find(|(m, _)| m == id).map(|(_, r)| r.as_str());
        for id in ["b", "c", "d", "e"] {
            assert_eq!(rep(id), Some("b"));
        }
        assert_eq!(rep("y"), Some("x"));
        assert_eq!(rep("a"), None);
        assert_eq!(members.len(), 6);
    }
}
