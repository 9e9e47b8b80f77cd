// Package jsonscan finds where a JSON string or value ends in text already known to be valid
// JSON, without decoding it and without allocating. It is the lexical part that the fast paths
// over stored SCIM attributes share: plugins/scim/protocol (canonical text, checked by its own
// checker) and lib/auth/scimprov (text json.Valid accepted). What counts as acceptable text
// (which escapes, which key order) differs between them and stays with each caller: this package
// checks nothing but compactness, and on text that is not valid JSON it only promises not to
// panic and to return an index no greater than len(s).
//
// It reads a string or a byte slice alike, so that neither caller copies its text to scan it.
package jsonscan

// Text is what the scanner reads.
type Text interface{ ~string | ~[]byte }

// SkipString returns the index just past the JSON string whose opening quote is at s[i], or
// len(s) if s ends first. It checks nothing inside the string: a backslash escapes the byte after
// it, which is all it takes to find the closing quote of a valid string (a \u escape's hex digits
// are never a quote or a backslash).
func SkipString[T Text](s T, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(s)
}

// SkipValue returns the index just past the JSON value that starts at s[i]: past the closing
// quote or bracket of a string, object or array; for a number or literal, which has no closing
// byte, the index of the ',', '}' or ']' that follows it in the enclosing array or object, or
// len(s). compact is false if the scan met whitespace outside strings (so the value, or the gap
// after a number or literal, is not compact); the scan goes on past it, so end does not depend
// on compactness.
func SkipValue[T Text](s T, i int) (end int, compact bool) {
	compact = true
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"':
			i = SkipString(s, i)
			if depth == 0 {
				return i, compact
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the enclosing object or array ends: a number or literal did
				return i, compact
			}
			depth--
			if depth == 0 {
				return i + 1, compact
			}
		case ',':
			if depth == 0 {
				return i, compact
			}
		case ' ', '\t', '\n', '\r':
			compact = false
		}
		i++
	}
	return len(s), compact
}
