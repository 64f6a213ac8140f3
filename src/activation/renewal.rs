//! When a renewal takes effect: the pure rule behind every confirmation.
//!
//! FM cards **extend**: the new term starts where the card's last current-or-queued term
//! ends, or now if none. eSIMs **replace**: the current term ends now and the new one
//! starts now (terms queued after it move back so that nothing overlaps and nothing paid
//! for is lost). Days are `validity_days × 24 h` in UTC.

use chrono::NaiveDateTime;

use crate::cards::terms::{service_end, term_at, term_length, upcoming, TermRow};
use crate::domain::CardType;

/// What a confirmation does to a card's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub effective_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    /// When the card's service ended, or was to end, before this renewal.
    pub previous_valid_until: Option<NaiveDateTime>,
    /// eSIM: the current term, cut to end now.
    pub truncate: Option<(String, NaiveDateTime)>,
    /// eSIM: queued terms moved to after the new one: (term id, new from, new until).
    pub requeue: Vec<(String, NaiveDateTime, NaiveDateTime)>,
}

pub fn plan(
    card_type: CardType,
    terms: &[TermRow],
    validity_days: i32,
    now: NaiveDateTime,
) -> Renewal {
    let length = term_length(validity_days);
    let previous_valid_until = terms.iter().map(|t| t.valid_until).max();
    match card_type {
        CardType::Fm => {
            let effective_from = service_end(terms, now).unwrap_or(now);
            Renewal {
                effective_from,
                valid_until: effective_from + length,
                previous_valid_until,
                truncate: None,
                requeue: Vec::new(),
            }
        }
        CardType::Esim => {
            let valid_until = now + length;
            let mut cursor = valid_until;
            let requeue = upcoming(terms, now)
                .into_iter()
                .map(|t| {
                    let from = cursor;
                    cursor = from + (t.valid_until - t.valid_from);
                    (t.id.clone(), from, cursor)
                })
                .collect();
            Renewal {
                effective_from: now,
                valid_until,
                previous_valid_until,
                truncate: term_at(terms, now).map(|t| (t.id.clone(), now)),
                requeue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::terms::tests::{at, term};
    use chrono::TimeDelta;

    const MONTH: i32 = 30;

    #[test]
    fn with_no_term_both_start_now() {
        for card_type in [CardType::Fm, CardType::Esim] {
            let renewal = plan(card_type, &[], MONTH, at(10, 12));
            assert_eq!(renewal.effective_from, at(10, 12));
            assert_eq!(renewal.valid_until, at(10, 12) + TimeDelta::days(30));
            assert_eq!(renewal.previous_valid_until, None);
            assert_eq!(renewal.truncate, None);
        }
    }

    #[test]
    fn fm_extends_a_current_term() {
        let terms = [term("a", at(1, 0), at(20, 0))];
        let renewal = plan(CardType::Fm, &terms, MONTH, at(10, 12));
        assert_eq!(renewal.effective_from, at(20, 0));
        assert_eq!(renewal.valid_until, at(20, 0) + TimeDelta::days(30));
        assert_eq!(renewal.previous_valid_until, Some(at(20, 0)));
        assert_eq!(renewal.truncate, None);
    }

    #[test]
    fn fm_extends_after_the_queue() {
        let terms = [
            term("a", at(1, 0), at(20, 0)),
            term("b", at(20, 0), at(28, 0)),
        ];
        let renewal = plan(CardType::Fm, &terms, MONTH, at(10, 12));
        assert_eq!(renewal.effective_from, at(28, 0));
        assert_eq!(renewal.previous_valid_until, Some(at(28, 0)));
    }

    #[test]
    fn fm_after_expiry_starts_now() {
        let terms = [term("a", at(1, 0), at(5, 0))];
        let renewal = plan(CardType::Fm, &terms, MONTH, at(10, 12));
        assert_eq!(renewal.effective_from, at(10, 12));
        assert_eq!(renewal.previous_valid_until, Some(at(5, 0)));
    }

    #[test]
    fn at_exactly_valid_until_the_old_term_is_over() {
        let terms = [term("a", at(1, 0), at(10, 12))];
        let fm = plan(CardType::Fm, &terms, MONTH, at(10, 12));
        assert_eq!(fm.effective_from, at(10, 12));
        assert_eq!(fm.previous_valid_until, Some(at(10, 12)));
        let esim = plan(CardType::Esim, &terms, MONTH, at(10, 12));
        assert_eq!(esim.truncate, None, "nothing current to cut");
        assert_eq!(esim.effective_from, at(10, 12));
    }

    #[test]
    fn esim_replaces_the_current_term_now() {
        let terms = [term("a", at(1, 0), at(20, 0))];
        let renewal = plan(CardType::Esim, &terms, MONTH, at(10, 12));
        assert_eq!(renewal.effective_from, at(10, 12));
        assert_eq!(renewal.valid_until, at(10, 12) + TimeDelta::days(30));
        assert_eq!(renewal.truncate, Some(("a".into(), at(10, 12))));
        assert_eq!(renewal.previous_valid_until, Some(at(20, 0)));
    }

    #[test]
    fn esim_moves_queued_terms_after_the_new_one() {
        let terms = [
            term("a", at(1, 0), at(20, 0)),
            term("b", at(20, 0), at(25, 0)),
        ];
        let now = at(10, 12);
        let renewal = plan(CardType::Esim, &terms, MONTH, now);
        let new_end = now + TimeDelta::days(30);
        assert_eq!(
            renewal.requeue,
            vec![("b".into(), new_end, new_end + TimeDelta::days(5))]
        );
        assert_eq!(renewal.previous_valid_until, Some(at(25, 0)));
    }

    #[test]
    fn esim_after_expiry_starts_now_and_cuts_nothing() {
        let terms = [term("a", at(1, 0), at(5, 0))];
        let renewal = plan(CardType::Esim, &terms, MONTH, at(10, 12));
        assert_eq!(
            (renewal.effective_from, renewal.truncate),
            (at(10, 12), None)
        );
    }
}
