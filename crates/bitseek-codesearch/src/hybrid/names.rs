//! What the ranking knows about each unit besides its vector and its words: its name (as
//! [`name_words`]), its owner's name, what kind of unit it is, and whether it is test code; and
//! the lookups from a question's words to the units whose name they are.

use super::query::{name_words, Question};
use super::table::{put_u32s, u32_at, Dictionary, Shared};
use std::collections::{BTreeMap, HashMap};

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
///
/// Kept as byte tables ([`super::table`]): a sorted dictionary from a name's [`name_words`]
/// (joined by spaces) to its rows, and per row the name as written, the owner's words, the
/// [`Role`] and the test flag. `bitseek index` writes them into the index's lexical file, so a
/// search reads them in place instead of every payload; [`Names::new`] builds the same bytes in
/// memory.
#[derive(Clone, Default)]
pub struct Names {
    bytes: Shared,
    parts: NamesParts,
}

/// Where a [`Names`]' sections are in its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NamesParts {
    pub units: usize,
    pub keys: Dictionary,
    /// The rows of each key, `u32` each.
    pub rows: (usize, usize),
    /// Per unit: name offset and length, owner offset and length (`u32::MAX`: none) in
    /// `strings`, and flags (role, test).
    pub table: (usize, usize),
    pub strings: (usize, usize),
}

/// Bytes per unit in the unit table.
pub(crate) const UNIT: usize = 20;

const NO_OWNER: u32 = u32::MAX;

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("units", &self.parts.units)
            .field("names", &self.parts.keys.len())
            .finish_non_exhaustive()
    }
}

/// How a unit's name matches a question's identifier, better first when compared: the owner
/// matches, spelled exactly as asked, its [`Role`], public.
pub type Match = (bool, bool, Role, bool);

/// The longest run of question words the name leg looks up.
const MAX_NAME_WORDS: usize = 8;

impl UnitInfo {
    /// What a code index's payload says about its unit (units of indexes built before the test
    /// flag was kept are test code by their path alone).
    pub fn of_payload(p: &serde_json::Value) -> UnitInfo {
        let text = |key: &str| p.get(key).and_then(|v| v.as_str());
        let test = p.get("test").and_then(|t| t.as_bool()).unwrap_or(false)
            || text("path")
                .is_some_and(|path| bitseek_chunk::is_test_path(std::path::Path::new(path)));
        UnitInfo {
            name: text("name").unwrap_or("").to_string(),
            owner: text("parent").map(String::from),
            kind: text("kind").unwrap_or("").to_string(),
            test,
        }
    }
}

impl Names {
    /// Builds the table from each row's unit (windows are left out of the name lookups: their
    /// "name" is the file's).
    pub fn new(units: impl IntoIterator<Item = UnitInfo>) -> Names {
        let mut by_words: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let (mut table, mut strings) = (Vec::new(), Vec::new());
        let mut count = 0usize;
        for (row, u) in units.into_iter().enumerate() {
            let role = Role::of_kind(&u.kind);
            if role != Role::Window {
                let words = name_words(&u.name);
                if !words.is_empty() {
                    by_words
                        .entry(words.join(" "))
                        .or_default()
                        .push(row as u32);
                }
            }
            let name = (strings.len() as u32, u.name.len() as u32);
            strings.extend_from_slice(u.name.as_bytes());
            let owner = match u.owner.as_deref().map(name_words) {
                None => (0, NO_OWNER),
                Some(words) => {
                    let key = words.join(" ");
                    let at = strings.len() as u32;
                    strings.extend_from_slice(key.as_bytes());
                    (at, key.len() as u32)
                }
            };
            let flags = role as u32 | (u.test as u32) << 8;
            put_u32s(&mut table, &[name.0, name.1, owner.0, owner.1, flags]);
            count = row + 1;
        }
        let keys: Vec<&[u8]> = by_words.keys().map(|k| k.as_bytes()).collect();
        let counts: Vec<usize> = by_words.values().map(Vec::len).collect();
        let (mut index, mut words) = (Vec::new(), Vec::new());
        Dictionary::encode(&keys, &counts, &mut index, &mut words);
        let mut bytes = index;
        let index_end = bytes.len();
        bytes.extend_from_slice(&words);
        let words_end = bytes.len();
        for rows in by_words.values() {
            put_u32s(&mut bytes, rows);
        }
        let rows_end = bytes.len();
        bytes.extend_from_slice(&table);
        let table_end = bytes.len();
        bytes.extend_from_slice(&strings);
        let parts = NamesParts {
            units: count,
            keys: Dictionary {
                index: (0, index_end),
                words: (index_end, words_end),
            },
            rows: (words_end, rows_end),
            table: (rows_end, table_end),
            strings: (table_end, bytes.len()),
        };
        Names {
            bytes: Shared::new(bytes),
            parts,
        }
    }

    /// The table of every payload of a code index, row by row.
    pub fn of_payloads(payloads: &[serde_json::Value]) -> Names {
        Names::new(payloads.iter().map(UnitInfo::of_payload))
    }

    /// The table whose sections `parts` names in `bytes` (already checked to lie inside them).
    pub(crate) fn from_parts(bytes: Shared, parts: NamesParts) -> Names {
        Names { bytes, parts }
    }

    /// Its bytes and where its sections are (what the lexical file writes).
    pub(crate) fn parts(&self) -> (&[u8], NamesParts) {
        (self.bytes.bytes(), self.parts)
    }

    /// Units in the table.
    pub fn len(&self) -> usize {
        self.parts.units
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.parts.units == 0
    }

    /// Unit `row`'s entry: name offset, name length, owner offset, owner length, flags.
    fn unit(&self, row: u32) -> [u32; 5] {
        let (start, end) = self.parts.table;
        let at = start.saturating_add((row as usize).saturating_mul(UNIT));
        if at.saturating_add(UNIT) > end {
            return [0, 0, 0, NO_OWNER, 0];
        }
        let b = self.bytes.bytes();
        [0, 4, 8, 12, 16].map(|o| u32_at(b, at + o))
    }

    fn string(&self, off: u32, len: u32) -> &[u8] {
        let (start, end) = self.parts.strings;
        let from = start.saturating_add(off as usize);
        match from.checked_add(len as usize) {
            Some(to) if to <= end => self.bytes.get(from..to),
            _ => &[],
        }
    }

    /// The name as written.
    fn raw(&self, u: &[u32; 5]) -> &[u8] {
        self.string(u[0], u[1])
    }

    /// The owner's [`name_words`], joined by spaces.
    fn owner(&self, u: &[u32; 5]) -> Option<&[u8]> {
        (u[3] != NO_OWNER).then(|| self.string(u[2], u[3]))
    }

    fn role(u: &[u32; 5]) -> Role {
        match u[4] & 0xff {
            0 => Role::Window,
            1 => Role::Impl,
            _ => Role::Definition,
        }
    }

    /// Whether row `row` is test code.
    pub fn is_test(&self, row: u32) -> bool {
        self.unit(row)[4] >> 8 & 1 == 1
    }

    /// The rows of the name whose words, joined by spaces, are `key`.
    fn rows_of(&self, key: &str) -> Vec<u32> {
        let bytes = self.bytes.bytes();
        let Some(r) = self.parts.keys.find(bytes, key.as_bytes()) else {
            return Vec::new();
        };
        let (start, end) = self.parts.rows;
        let at = |i: usize| start.saturating_add(i.saturating_mul(4));
        if r.start > r.end || at(r.end) > end {
            return Vec::new();
        }
        self.bytes
            .get(at(r.start)..at(r.end))
            .chunks_exact(4)
            .map(|c| u32_at(c, 0))
            .collect()
    }

    /// The rows whose name is the question's identifier ([`Question::name`]: all of its words, in
    /// order), each with how well it matches: the owner matches too (`Notify::notify_one`), the name
    /// is written exactly as asked, its [`Role`], and the name is public (no leading `_`: `to csv`
    /// asks for `to_csv` before `_to_csv`).
    pub fn exact(&self, q: &Question) -> Vec<(u32, Match)> {
        if q.name.is_empty() {
            return Vec::new();
        }
        let raw = q.raw_name().as_bytes();
        let q_owner = q.owner.as_ref().map(|o| o.join(" "));
        self.rows_of(&q.name.join(" "))
            .into_iter()
            .map(|r| {
                let u = self.unit(r);
                let name = self.raw(&u);
                let owner = q_owner
                    .as_deref()
                    .is_some_and(|o| self.owner(&u) == Some(o.as_bytes()));
                let public = name.first() != Some(&b'_');
                (r, (owner, name == raw, Self::role(&u), public))
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
                let rows = self.rows_of(&run.join(" "));
                if rows.is_empty() {
                    continue;
                }
                let w = weight(run);
                for r in rows {
                    let e = best.entry(r).or_insert(w);
                    *e = e.max(w);
                }
            }
        }
        let mut out: Vec<(u32, f32)> = best.into_iter().collect();
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// Checks what reading in place trusts: the dictionary, every row it names, and every unit's
    /// strings and flags. Reads every byte; run when a file is verified.
    pub(crate) fn check(&self) -> Result<(), String> {
        let bytes = self.bytes.bytes();
        let (start, end) = self.parts.rows;
        self.parts
            .keys
            .check(bytes, (end - start) / 4)
            .map_err(|e| format!("the name dictionary is damaged: {e}"))?;
        let units = self.parts.units;
        if let Some(i) = (start..end)
            .step_by(4)
            .position(|at| u32_at(bytes, at) as usize >= units)
        {
            return Err(format!("name row {i} is not a unit of the index"));
        }
        let (s_start, s_end) = self.parts.strings;
        let inside = |off: u32, len: u32| {
            (off as usize)
                .checked_add(len as usize)
                .is_some_and(|e| e <= s_end - s_start)
        };
        for row in 0..units as u32 {
            let u = self.unit(row);
            let owner_ok = u[3] == NO_OWNER || inside(u[2], u[3]);
            if !inside(u[0], u[1]) || !owner_ok || u[4] & 0xff > 2 || u[4] >> 8 > 1 {
                return Err(format!("the name table's entry for unit {row} is damaged"));
            }
        }
        Ok(())
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

    #[test]
    fn exact_matches_a_scan_of_every_unit() {
        let names = [
            "notify_one",
            "NotifyOne",
            "notify",
            "_notify_one",
            "Notify",
            "lib.rs",
        ];
        let owners = [None, Some("Notify"), Some("runtime::Handle"), Some("")];
        let kinds = ["function", "impl", "window", "method"];
        let mut units = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for (j, owner) in owners.iter().enumerate() {
                for (k, kind) in kinds.iter().enumerate() {
                    let mut u = unit(name, kind, *owner);
                    u.test = (i + j + k) % 3 == 0;
                    units.push(u);
                }
            }
        }
        let table = Names::new(units.clone());
        assert_eq!(table.len(), units.len());
        for (row, u) in units.iter().enumerate() {
            assert_eq!(table.is_test(row as u32), u.test);
        }
        for text in [
            "notify_one",
            "notify one",
            "Notify::notify_one",
            "Handle::notify",
            "NotifyOne",
            "_notify_one",
            "lib.rs",
            "::notify",
            "nothing",
            "",
        ] {
            let q = Question::new(text);
            let want: Vec<(u32, Match)> = units
                .iter()
                .enumerate()
                .filter(|(_, u)| {
                    Role::of_kind(&u.kind) != Role::Window
                        && !q.name.is_empty()
                        && name_words(&u.name) == q.name
                })
                .map(|(r, u)| {
                    let owner = q.owner.is_some() && u.owner.as_deref().map(name_words) == q.owner;
                    let spelled = u.name == q.raw_name();
                    let public = !u.name.starts_with('_');
                    (r as u32, (owner, spelled, Role::of_kind(&u.kind), public))
                })
                .collect();
            assert_eq!(table.exact(&q), want, "{text:?}");
        }
    }
}
