//! What the ranking knows about each unit besides its vector and its words: its name (as
//! [`name_words`]), its owner's name, what kind of unit it is, and whether it is test code; and
//! the lookups from a question's words to the units whose name they are.

use super::query::{name_words, Question};
use std::collections::HashMap;

/// What a unit is, for ordering units with the same name: the definition first, then the
/// `impl` blocks of a type, then line windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A line window (a file without definitions).
    Window,
    /// A Rust `impl` block: named after its type, but not the type's definition.
    Impl,
    /// A function, method, class, struct, enum, trait or interface.
    Definition,
}

impl Role {
    /// The role of a unit of kind `kind` (`function`, `impl`, `window`, …).
    pub fn of_kind(kind: &str) -> Role {
        match kind {
            "impl" => Role::Impl,
            "window" => Role::Window,
            _ => Role::Definition,
        }
    }
}

/// One unit, as the ranking sees it.
#[derive(Clone, Debug, Default)]
pub struct UnitInfo {
    /// The name as written (`notify_one`).
    pub name: String,
    /// The enclosing type, function or class, if any.
    pub owner: Option<String>,
    /// The unit's kind as stored (`function`, `impl`, …).
    pub kind: String,
    /// Test, benchmark or example code.
    pub test: bool,
}

/// The names of every unit of an index (row `i` is unit `i`).
#[derive(Debug, Default)]
pub struct Names {
    by_words: HashMap<Vec<String>, Vec<u32>>,
    raw: Vec<String>,
    owner: Vec<Option<Vec<String>>>,
    role: Vec<Role>,
    test: Vec<bool>,
}

/// How a unit's name matches a question's identifier, better first when compared: the owner
/// matches, spelled exactly as asked, its [`Role`], public.
pub type Match = (bool, bool, Role, bool);

/// The longest run of question words the name leg looks up.
const MAX_NAME_WORDS: usize = 8;

impl Names {
    /// Builds the table from each row's unit (windows are left out of the name lookups: their
    /// "name" is the file's).
    pub fn new(units: impl IntoIterator<Item = UnitInfo>) -> Names {
        let mut n = Names::default();
        for (row, u) in units.into_iter().enumerate() {
            let role = Role::of_kind(&u.kind);
            if role != Role::Window {
                let words = name_words(&u.name);
                if !words.is_empty() {
                    n.by_words.entry(words).or_default().push(row as u32);
                }
            }
            n.owner.push(u.owner.as_deref().map(name_words));
            n.raw.push(u.name);
            n.role.push(role);
            n.test.push(u.test);
        }
        n
    }

    /// Units in the table.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether row `row` is test code.
    pub fn is_test(&self, row: u32) -> bool {
        self.test[row as usize]
    }

    /// The rows whose name is the question's identifier ([`Question::name`]: all of its words, in
    /// order), each with how well it matches: the owner matches too (`Notify::notify_one`), the name
    /// is written exactly as asked, its [`Role`], and the name is public (no leading `_`: `to csv`
    /// asks for `to_csv` before `_to_csv`).
    pub fn exact(&self, q: &Question) -> Vec<(u32, Match)> {
        let Some(rows) = self.by_words.get(&q.name) else {
            return Vec::new();
        };
        let raw = q.raw_name();
        rows.iter()
            .map(|&r| {
                let i = r as usize;
                let owner = q.owner.is_some() && self.owner[i] == q.owner;
                let public = !self.raw[i].starts_with('_');
                (r, (owner, self.raw[i] == raw, self.role[i], public))
            })
            .collect()
    }

    /// The rows whose whole name occurs in the question as consecutive words (so "notify one
    /// waiter" finds `notify_one` and `notify`), scored by `weight` of the matched words (e.g. their
    /// rarity); a row matched by several runs keeps its best score.
    pub fn phrases(&self, q: &Question, weight: impl Fn(&[String]) -> f32) -> Vec<(u32, f32)> {
        let words = &q.name;
        let mut best: HashMap<u32, f32> = HashMap::new();
        for start in 0..words.len() {
            for end in start + 1..=(start + MAX_NAME_WORDS).min(words.len()) {
                let run = &words[start..end];
                let Some(rows) = self.by_words.get(run) else {
                    continue;
                };
                let w = weight(run);
                for &r in rows {
                    let e = best.entry(r).or_insert(w);
                    *e = e.max(w);
                }
            }
        }
        let mut out: Vec<(u32, f32)> = best.into_iter().collect();
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, kind: &str, owner: Option<&str>) -> UnitInfo {
        UnitInfo {
            name: name.into(),
            owner: owner.map(String::from),
            kind: kind.into(),
            test: false,
        }
    }

    #[test]
    fn exact_names_and_phrases() {
        let names = Names::new([
            unit("notify_one", "method", Some("Notify")),
            unit("notify_last", "method", Some("Notify")),
            unit("Notify", "struct", None),
            unit("Notify", "impl", None),
            unit("notify", "function", None),
            unit("lib.rs", "window", None),
        ]);
        let rows = |v: Vec<(u32, Match)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(rows(names.exact(&Question::new("notify one"))), [0]);
        assert_eq!(rows(names.exact(&Question::new("notifyOne"))), [0]);
        let q = Question::new("Notify");
        let found = names.exact(&q);
        assert_eq!(
            found,
            [
                (2, (false, true, Role::Definition, true)),
                (3, (false, true, Role::Impl, true)),
                (4, (false, false, Role::Definition, true)),
            ]
        );
        let found = names.exact(&Question::new("Notify::notify_one"));
        assert_eq!(found, [(0, (true, true, Role::Definition, true))]);
        assert!(names.exact(&Question::new("lib rs")).is_empty());
        let phrases = names.phrases(&Question::new("notify one waiting task"), |w| {
            w.len() as f32
        });
        assert_eq!(phrases, [(0, 2.0), (2, 1.0), (3, 1.0), (4, 1.0)]);
    }
}
