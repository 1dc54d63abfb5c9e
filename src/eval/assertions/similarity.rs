//! Text similarity for `semantic_similarity`.
//!
//! With an embedding model configured, the score is the [`cosine`] of the two embeddings.
//! Without one, [`lexical_similarity`] is the built-in fallback: it needs no network and is
//! deterministic, but it only sees shared words, not shared meaning, so thresholds tuned for
//! embeddings are usually too strict for it.

use std::collections::BTreeMap;

/// Lexical similarity of two texts, in `0.0..=1.0`.
///
/// Both texts are case-folded and split into words (Unicode-aware: any run of letters, marks
/// and digits is a word, and each Han, Hiragana or Katakana character is a word of its own,
/// since those scripts do not separate words with spaces). Each text becomes a vector of
/// term frequencies over its word unigrams and bigrams, and the score is the cosine of the
/// two vectors. Punctuation and case do not matter, so texts equal up to those score `1.0`;
/// the score is symmetric. Two texts without any words score `1.0`; one without words
/// against one with words scores `0.0`.
pub fn lexical_similarity(a: &str, b: &str) -> f64 {
    let words_a = words(a);
    let words_b = words(b);
    if words_a == words_b {
        return 1.0;
    }
    if words_a.is_empty() || words_b.is_empty() {
        return 0.0;
    }
    let tf_a = term_frequencies(&words_a);
    let tf_b = term_frequencies(&words_b);
    // Iterating a BTreeMap adds the products in key order whichever text comes first, so
    // the result is exactly symmetric.
    let dot: f64 = tf_a
        .iter()
        .filter_map(|(term, x)| tf_b.get(term).map(|y| x * y))
        .sum();
    let norm = |tf: &BTreeMap<String, f64>| tf.values().map(|x| x * x).sum::<f64>().sqrt();
    (dot / (norm(&tf_a) * norm(&tf_b))).clamp(0.0, 1.0)
}

/// Cosine similarity of two embedding vectors, in `-1.0..=1.0`.
///
/// `None` when the vectors differ in length, are empty, either is all zeros, or either holds
/// a value that is not finite: there is no meaningful angle then.
pub fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut norm_a, mut norm_b) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if !(dot.is_finite() && norm_a.is_finite() && norm_b.is_finite()) {
        return None;
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return None;
    }
    Some((dot / (norm_a * norm_b).sqrt()).clamp(-1.0, 1.0))
}

/// The case-folded words of `text`.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if is_ideograph(c) {
            flush(&mut current, &mut words);
            words.push(c.to_string());
        } else if c.is_alphanumeric() || is_mark(c) {
            current.extend(c.to_lowercase());
        } else if (c == '\'' || c == '\u{2019}') && !current.is_empty() {
            // "don't" is one word; a quote that ends a word is dropped by `flush`.
            current.push('\'');
        } else {
            flush(&mut current, &mut words);
        }
    }
    flush(&mut current, &mut words);
    words
}

/// Ends the word being collected, if any.
fn flush(current: &mut String, words: &mut Vec<String>) {
    let word = current.trim_end_matches('\'');
    if !word.is_empty() {
        words.push(word.to_owned());
    }
    current.clear();
}

/// Term frequencies of the unigrams and bigrams of `words`.
fn term_frequencies(words: &[String]) -> BTreeMap<String, f64> {
    let mut tf = BTreeMap::new();
    for word in words {
        *tf.entry(word.clone()).or_insert(0.0) += 1.0;
    }
    // A bigram holds a space, so it never collides with a unigram.
    for pair in words.windows(2) {
        *tf.entry(format!("{} {}", pair[0], pair[1])).or_insert(0.0) += 1.0;
    }
    tf
}

/// Whether `c` belongs to a script written without spaces between words.
fn is_ideograph(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'     // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'   // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK Unified Ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK Compatibility Ideographs
        | '\u{20000}'..='\u{2FA1F}' // CJK Extensions B and later
    )
}

/// Whether `c` is a combining mark (part of the word it follows).
fn is_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05C7}'
        | '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0900}'..='\u{0903}'
        | '\u{093A}'..='\u{094F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_score_one() {
        assert_eq!(lexical_similarity("Hello, world!", "hello world"), 1.0);
        assert_eq!(
            lexical_similarity("ÄPFEL und Birnen", "äpfel, und birnen."),
            1.0
        );
        let text = "The change builds SQL from user input.";
        assert_eq!(lexical_similarity(text, text), 1.0);
    }

    #[test]
    fn empty_texts() {
        assert_eq!(lexical_similarity("", ""), 1.0);
        assert_eq!(lexical_similarity("  ...  ", ""), 1.0);
        assert_eq!(lexical_similarity("", "something"), 0.0);
        assert_eq!(lexical_similarity("something", "!!"), 0.0);
    }

    #[test]
    fn paraphrase_scores_higher_than_unrelated_text() {
        let expected = "The change builds SQL from user input.";
        let paraphrase =
            "This change builds the SQL query from user input, which allows SQL injection.";
        let unrelated = "The weather in Lisbon is sunny with a light breeze today.";
        let close = lexical_similarity(expected, paraphrase);
        let far = lexical_similarity(expected, unrelated);
        assert!(close > far, "{close} <= {far}");
        assert!(close > 0.4, "{close}");
        assert!(far < 0.2, "{far}");
    }

    #[test]
    fn word_order_matters_through_bigrams() {
        let same_order = lexical_similarity("dog bites man", "the dog bites a man");
        let reversed = lexical_similarity("dog bites man", "man bites dog");
        assert!(same_order > 0.0 && reversed > 0.0);
        assert!(lexical_similarity("dog bites man", "man bites dog") < 1.0);
    }

    #[test]
    fn disjoint_texts_score_zero() {
        assert_eq!(lexical_similarity("alpha beta", "gamma delta"), 0.0);
    }

    #[test]
    fn bounds_and_symmetry() {
        let texts = [
            "",
            "a",
            "a a a b",
            "The quick brown fox jumps over the lazy dog.",
            "A quick brown dog jumps over the lazy fox!",
            "Le renard brun rapide saute par-dessus le chien paresseux.",
            "素早い茶色の狐が怠け者の犬を飛び越える",
            "茶色の犬",
            "don't stop — won't stop",
        ];
        for a in texts {
            for b in texts {
                let ab = lexical_similarity(a, b);
                let ba = lexical_similarity(b, a);
                assert!((0.0..=1.0).contains(&ab), "{a:?} vs {b:?}: {ab}");
                assert_eq!(ab.to_bits(), ba.to_bits(), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn unicode_words_are_split() {
        assert_eq!(
            words("Grüße, Jürgen! naïve café"),
            ["grüße", "jürgen", "naïve", "café"]
        );
        assert_eq!(words("茶色の犬"), ["茶", "色", "の", "犬"]);
        assert_eq!(words("Don't 'quote' me"), ["don't", "quote", "me"]);
        assert_eq!(words("ΣΊΣΥΦΟΣ"), ["σίσυφοσ"]);
        assert!(lexical_similarity("茶色の犬", "茶色の猫") > 0.4);
    }

    #[test]
    fn cosine_of_vectors() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0]), Some(1.0));
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 2.0]), Some(0.0));
        assert_eq!(cosine(&[1.0, 2.0], &[-1.0, -2.0]), Some(-1.0));
        let c = cosine(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]).unwrap_or_default();
        assert!(c > 0.99 && c <= 1.0, "{c}");
    }

    #[test]
    fn cosine_undefined_cases() {
        assert_eq!(cosine(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(cosine(&[], &[]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), None);
        assert_eq!(cosine(&[1.0, 2.0], &[0.0, 0.0]), None);
        assert_eq!(cosine(&[f32::NAN, 1.0], &[1.0, 1.0]), None);
        assert_eq!(cosine(&[f32::INFINITY, 1.0], &[1.0, 1.0]), None);
    }

    #[test]
    fn cosine_is_symmetric() {
        let a = [0.3_f32, -1.2, 4.5, 0.01];
        let b = [2.0_f32, 0.7, -0.2, 9.0];
        assert_eq!(cosine(&a, &b), cosine(&b, &a));
    }
}
