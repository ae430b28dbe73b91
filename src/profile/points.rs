//! A profile's points as a set keyed by the full point key ([`Point::key`]): two points of one
//! configuration cannot both be in a profile. Inserting a point whose key is present replaces it
//! in place (a retried point replaces the failed one); reading a profile file that lists one key
//! twice is an error naming both entries. Order is insertion order (the sweep's enumeration), and
//! the JSON form is the plain list of schema 2.

use super::Point;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Points {
    list: Vec<Point>,
    index: HashMap<String, usize>,
}

impl PartialEq for Points {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Points {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `p`, or replaces the point of its key (keeping that point's position); returns the
    /// point replaced.
    pub fn insert(&mut self, p: Point) -> Option<Point> {
        let key = p.key();
        match self.index.get(&key) {
            Some(&i) => Some(std::mem::replace(&mut self.list[i], p)),
            None => {
                self.index.insert(key, self.list.len());
                self.list.push(p);
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Point> {
        self.index.get(key).map(|&i| &self.list[i])
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Changes the point of `key` with `f`; false when there is none. A change of the key itself
    /// moves the point to its new key (replacing a point already there).
    pub fn modify(&mut self, key: &str, f: impl FnOnce(&mut Point)) -> bool {
        let Some(&i) = self.index.get(key) else { return false };
        f(&mut self.list[i]);
        if self.list[i].key() != key {
            let p = self.list.remove(i);
            self.reindex();
            self.insert(p);
        }
        true
    }

    /// Changes every point with `f`; points whose keys then coincide are one (the later wins).
    pub fn modify_all(&mut self, f: impl FnMut(&mut Point)) {
        self.list.iter_mut().for_each(f);
        let list = std::mem::take(&mut self.list);
        self.index.clear();
        self.extend(list);
    }

    pub fn retain(&mut self, keep: impl FnMut(&Point) -> bool) {
        self.list.retain(keep);
        self.reindex();
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }

    pub fn into_vec(self) -> Vec<Point> {
        self.list
    }

    fn reindex(&mut self) {
        self.index = self.list.iter().enumerate().map(|(i, p)| (p.key(), i)).collect();
    }
}

impl std::ops::Deref for Points {
    type Target = [Point];
    fn deref(&self) -> &[Point] {
        &self.list
    }
}

/// Later points replace earlier ones of the same key.
impl FromIterator<Point> for Points {
    fn from_iter<I: IntoIterator<Item = Point>>(iter: I) -> Self {
        let mut s = Points::new();
        s.extend(iter);
        s
    }
}

impl Extend<Point> for Points {
    fn extend<I: IntoIterator<Item = Point>>(&mut self, iter: I) {
        for p in iter {
            self.insert(p);
        }
    }
}

impl From<Vec<Point>> for Points {
    fn from(v: Vec<Point>) -> Self {
        v.into_iter().collect()
    }
}

impl IntoIterator for Points {
    type Item = Point;
    type IntoIter = std::vec::IntoIter<Point>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

impl<'a> IntoIterator for &'a Points {
    type Item = &'a Point;
    type IntoIter = std::slice::Iter<'a, Point>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl Serialize for Points {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

/// A list that names one key twice is refused: which of the two holds the truth is unknown.
impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Point>::deserialize(d)?;
        let mut s = Points::new();
        for (j, p) in list.into_iter().enumerate() {
            let key = p.key();
            if let Some(&i) = s.index.get(&key) {
                return Err(serde::de::Error::custom(format!(
                    "points[{j}] repeats the key of points[{i}] ({key}); a profile holds each configuration once"
                )));
            }
            s.insert(p);
        }
        Ok(s)
    }
}
