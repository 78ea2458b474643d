//! Redis's glob-style patterns (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]` and `\x`, used by
//! PSUBSCRIBE, SENTINEL RESET and SENTINEL CONFIG GET. No I/O, no recursion: a pattern of many
//! stars costs O(pattern × text), not exponential time.

/// Whether `text` matches `pattern`; `nocase` compares ASCII letters case-insensitively.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern position after it and the text position
    // it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t], nocase) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], text[t], nocase) {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, text[t], nocase) {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star swallow one more byte, or fail.
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches `c` against the class opening at `pattern[open] == b'['`: whether it matched and the
/// pattern position after the class. An unterminated class runs to the end of the pattern, as
/// in Redis.
fn class(pattern: &[u8], open: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < pattern.len() => {
                if eq(pattern[i + 1], c, nocase) {
                    matched = true;
                }
                i += 2;
            }
            Some(&lo) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                let hi = pattern[i + 2];
                let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                let mut ch = c;
                if nocase {
                    lo = lo.to_ascii_lowercase();
                    hi = hi.to_ascii_lowercase();
                    ch = ch.to_ascii_lowercase();
                }
                if ch >= lo && ch <= hi {
                    matched = true;
                }
                i += 3;
            }
            Some(&x) => {
                if eq(x, c, nocase) {
                    matched = true;
                }
                i += 1;
            }
        }
    }
    Some((matched != negate, i))
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("mymaster", "mymaster"));
        assert!(!m("mymaster", "mymaster2"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("my*", "mymaster"));
        assert!(m("*master", "mymaster"));
        assert!(m("m*s*r", "mymaster"));
        assert!(!m("m*x*r", "mymaster"));
        assert!(m("?ymaster", "mymaster"));
        assert!(!m("?", ""));
        assert!(m("+s*", "+sdown"));
        assert!(m("[-+]sdown", "-sdown"));
        assert!(m("[-+]sdown", "+sdown"));
        assert!(!m("[-+]sdown", "xsdown"));
    }

    #[test]
    fn classes_ranges_negation_escapes() {
        assert!(m("h[a-e]llo", "hello"));
        assert!(!m("h[a-d]llo", "hello"));
        assert!(m("h[e-a]llo", "hello"), "reversed ranges work as in Redis");
        assert!(m("h[^a]llo", "hello"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("[abc", "b"), "an unterminated class ends the pattern");
        assert!(matches(b"MY*", b"mymaster", true));
        assert!(!matches(b"MY*", b"mymaster", false));
        assert!(matches(b"[A-C]x", b"bx", true));
    }

    #[test]
    fn many_stars_are_not_exponential() {
        let pattern = "*a".repeat(40) + "b";
        let text = "a".repeat(200);
        let start = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    /// A slow but obviously correct matcher for `*`, `?` and literals.
    fn dumb(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| dumb(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && dumb(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && dumb(&p[1..], &t[1..]),
        }
    }

    #[test]
    fn agrees_with_a_dumb_matcher_on_random_inputs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let p: Vec<u8> = (0..rng.gen_range(0..7))
                .map(|_| b"ab*?"[rng.gen_range(0..4)])
                .collect();
            let t: Vec<u8> = (0..rng.gen_range(0..8))
                .map(|_| b"ab"[rng.gen_range(0..2)])
                .collect();
            assert_eq!(matches(&p, &t, false), dumb(&p, &t), "{p:?} {t:?}");
        }
    }
}
