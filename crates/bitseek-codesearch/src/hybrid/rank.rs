//! The ranking `bitseek search` returns, from the semantic leg, the lexical leg and the units'
//! names: weighted reciprocal rank fusion of the legs, test code demoted, and the units that
//! define the identifier a question names put first.
//!
//! Each signal is a field of [`Ranking`] so that `bitseek eval-code --ranking` can measure it
//! alone and together; [`Ranking::default`] keeps the ones that win on both languages' dev sets.

use super::fusion::RRF_K;
use super::names::{Match, Names, Role};
use super::query::Question;
use std::collections::HashMap;

/// How the legs are combined. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranking {
    /// Drop question stop words ("where", "is", "the", "how") from the lexical leg's words.
    pub stop_words: bool,
    /// Put the units whose name is the question's identifier (`notify_one`, `notify one`,
    /// `Notify::notify_one`) first: the owner's match, then the exact spelling, then definitions
    /// before `impl` blocks before windows, library code before tests, public names before
    /// `_private` ones, then the fused order.
    pub definitions_first: bool,
    /// Weight of the name leg in the fusion: units whose whole name occurs in the question, by
    /// the rarity of its words (0 leaves the leg out).
    pub name_weight: f32,
    /// Weight of the lexical leg against the semantic leg's 1 for plain questions: 1 fuses them
    /// as equals; an index whose vectors rank better alone gets less ([`Ranking::for_model`]).
    pub lexical_weight: f32,
    /// Weight of the lexical leg when the question is written like an identifier or is a unit's
    /// name (1 leaves it as for plain questions).
    pub symbol_lexical_weight: f32,
    /// Test, benchmark and example code has its fused score multiplied by this unless the question
    /// asks for tests (1 leaves it alone).
    pub test_factor: f32,
    /// Rank tests plainly, as if every question asked for them (`bitseek search --tests`).
    pub tests_plainly: bool,
}

impl Ranking {
    /// Semantic and lexical legs fused with equal weights and nothing else: the ranking before
    /// the code-aware signals.
    pub const PLAIN: Ranking = Ranking {
        stop_words: false,
        definitions_first: false,
        name_weight: 0.0,
        lexical_weight: 1.0,
        symbol_lexical_weight: 1.0,
        test_factor: 1.0,
        tests_plainly: false,
    };
}

impl Default for Ranking {
    fn default() -> Ranking {
        Ranking {
            stop_words: true,
            definitions_first: true,
            name_weight: 0.0,
            lexical_weight: 1.0,
            symbol_lexical_weight: 1.0,
            test_factor: 0.5,
            tests_plainly: false,
        }
    }
}

impl Ranking {
    /// The default ranking for an index whose vectors `model` made: the lexical leg's weight
    /// ([`Ranking::lexical_weight`]) is the one chosen for those vectors on the mined
    /// validation packages (README, "Code search's model"); 1 for vectors it was not tuned for.
    pub fn for_model(model: &crate::ModelInfo) -> Ranking {
        Ranking {
            lexical_weight: lexical_weight(model),
            ..Ranking::default()
        }
    }
}

/// The lexical leg's weight for the built-in adapter with the head trained on its vectors (tier
/// 1 + 2): chosen on the mined validation packages (the mean of both languages' fused MRR over
/// 0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5 and 1; the same choice for the earlier, shorter-trained
/// adapter over 0, 0.05, …, 0.6, 0.8 and 1). Their vectors rank better than the
/// lexical leg fused as an equal (at 1, fusion ranked below semantic search alone); a light
/// lexical leg still breaks near-ties by the identifiers.
pub const ADAPTED_LEXICAL_WEIGHT: f32 = 0.05;

/// The lexical leg's weight for vectors made by `model` (see [`Ranking::for_model`]):
/// [`ADAPTED_LEXICAL_WEIGHT`] for the built-in adapter and its head, 1 for anything else (the
/// weight the fusion was designed with, on all-MiniLM-L6-v2).
pub fn lexical_weight(model: &crate::ModelInfo) -> f32 {
    let adapter = model.adapter.as_ref() == Some(crate::adapter::builtin_id());
    let head = model.encoder.as_ref() == Some(crate::encoder::builtin_adapted_id());
    if adapter && head {
        ADAPTED_LEXICAL_WEIGHT
    } else {
        1.0
    }
}

/// The words the lexical leg scores for `q` under `ranking`.
pub fn lexical_words<'q>(q: &'q Question, ranking: &Ranking) -> &'q [String] {
    if ranking.stop_words && !q.one_token && !q.content_words.is_empty() {
        &q.content_words
    } else {
        &q.words
    }
}

/// Ranks the units for `q`: `semantic` is the semantic leg (rows, best first), `lexical` the
/// lexical leg (rows, best first, each sharing a word with the question), `idf` the rarity of a
/// word (for the name leg), `accept` which rows may be returned (the filter). Best first with
/// the fused score; ties go to the lower row.
pub fn rank(
    q: &Question,
    semantic: &[u32],
    lexical: &[u32],
    names: &Names,
    idf: impl Fn(&str) -> f32,
    accept: impl Fn(u32) -> bool,
    ranking: &Ranking,
) -> Vec<(u32, f32)> {
    let exact: Vec<(u32, Match)> =
        if ranking.definitions_first || ranking.symbol_lexical_weight != 1.0 {
            names.exact(q).into_iter().filter(|e| accept(e.0)).collect()
        } else {
            Vec::new()
        };
    let symbol = q.one_token || !exact.is_empty();
    let lexical_weight = if symbol {
        ranking.symbol_lexical_weight as f64
    } else {
        ranking.lexical_weight as f64
    };
    let mut fused: HashMap<u32, f64> = HashMap::new();
    let mut add = |rows: &mut dyn Iterator<Item = u32>, weight: f64| {
        for (p, row) in rows.enumerate() {
            *fused.entry(row).or_default() += weight / (RRF_K + (p + 1) as f64);
        }
    };
    add(&mut semantic.iter().copied(), 1.0);
    add(&mut lexical.iter().copied(), lexical_weight);
    if ranking.name_weight > 0.0 {
        let phrase_weight = |words: &[String]| words.iter().map(|w| idf(w)).sum::<f32>();
        let leg = names.phrases(q, phrase_weight);
        let mut rows = leg.iter().map(|e| e.0).filter(|&r| accept(r));
        add(&mut rows, ranking.name_weight as f64);
    }
    let demote = !(ranking.tests_plainly || q.asks_for_tests) && ranking.test_factor != 1.0;
    // (first-tier key, fused score): the tier is None outside the exact-name units.
    type Tier = Option<(bool, bool, Role, bool, bool)>;
    let mut out: Vec<(u32, Tier, f64)> = fused
        .into_iter()
        .map(|(row, mut s)| {
            if demote && names.is_test(row) {
                s *= ranking.test_factor as f64;
            }
            (row, None, s)
        })
        .collect();
    if ranking.definitions_first {
        let at: HashMap<u32, usize> = out.iter().enumerate().map(|(i, o)| (o.0, i)).collect();
        for (row, (owner, spelled, role, public)) in exact {
            let library = !(demote && names.is_test(row));
            let tier = Some((owner, spelled, role, library, public));
            match at.get(&row) {
                Some(&i) => out[i].1 = tier,
                None => out.push((row, tier, 0.0)),
            }
        }
    }
    out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(r, _, s)| (r, s as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::names::UnitInfo;

    fn names() -> Names {
        let u = |name: &str, kind: &str, test: bool| UnitInfo {
            name: name.into(),
            owner: None,
            kind: kind.into(),
            test,
        };
        Names::new([
            u("notify_last", "method", false), // 0
            u("caller", "function", false),    // 1
            u("notify_one", "method", true),   // 2: a test helper of the same name
            u("Notify", "impl", false),        // 3
            u("notify_one", "method", false),  // 4: the definition
            u("other", "function", false),     // 5
        ])
    }

    fn rows(v: Vec<(u32, f32)>) -> Vec<u32> {
        v.into_iter().map(|x| x.0).collect()
    }

    #[test]
    fn the_definition_comes_first_then_fusion() {
        let n = names();
        let q = Question::new("notify_one");
        let sem = [0, 1, 3, 2];
        let lex = [1, 3, 2, 0];
        let plain = rank(&q, &sem, &lex, &n, |_| 1.0, |_| true, &Ranking::PLAIN);
        assert_eq!(plain[0].0, 1, "the caller wins by fusion alone");
        let got = rows(rank(
            &q,
            &sem,
            &lex,
            &n,
            |_| 1.0,
            |_| true,
            &Ranking::default(),
        ));
        // The library definition (found by neither leg), then the test helper, then the rest.
        assert_eq!(got[..2], [4, 2]);
        // Asking for tests or --tests ranks both definitions by the legs alone.
        let plainly = Ranking {
            tests_plainly: true,
            ..Ranking::default()
        };
        let got = rows(rank(&q, &sem, &lex, &n, |_| 1.0, |_| true, &plainly));
        assert_eq!(got[..2], [2, 4]);
        // The filter keeps rejected rows out of the first tier.
        let got = rows(rank(
            &q,
            &sem,
            &lex,
            &n,
            |_| 1.0,
            |r| r != 4,
            &Ranking::default(),
        ));
        assert!(!got.contains(&4) && got[0] == 2, "{got:?}");
    }

    #[test]
    fn tests_are_demoted_at_equal_score_unless_asked_for() {
        let n = names();
        // The test helper (row 2) is first in the semantic leg, the library method second.
        let q = Question::new("how are waiters woken");
        let got = rows(rank(
            &q,
            &[2, 1],
            &[],
            &n,
            |_| 1.0,
            |_| true,
            &Ranking::PLAIN,
        ));
        assert_eq!(got, [2, 1]);
        let got = rows(rank(
            &q,
            &[2, 1],
            &[],
            &n,
            |_| 1.0,
            |_| true,
            &Ranking::default(),
        ));
        assert_eq!(got, [1, 2]);
        let q = Question::new("tests for waking waiters");
        let got = rows(rank(
            &q,
            &[2, 1],
            &[],
            &n,
            |_| 1.0,
            |_| true,
            &Ranking::default(),
        ));
        assert_eq!(got, [2, 1]);
        let q = Question::new("waking waiters");
        let got = rows(rank(
            &q,
            &[2, 1],
            &[],
            &n,
            |_| 1.0,
            |_| true,
            &Ranking::default(),
        ));
        assert_eq!(got, [1, 2]);
    }
}
