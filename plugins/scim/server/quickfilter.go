package server

import (
	"strings"
	"unicode/utf8"
)

// quickEquality recognises the filter every Okta lookup sends, `<attr> eq "<value>"`, on one of
// the indexed attributes (unqualified, any case) with a plain string value, without the general
// filter parser: that parser is a backtracking PEG and cost about as much CPU as the rest of a
// lookup together. Anything else (an escape or a quote in the value, a URN-qualified path, another
// operator, a logical expression) returns ok false and goes through filter.Parse, so the result is
// always what the full grammar would give.
func quickEquality(raw string, indexed map[string]bool) (attr, value string, ok bool) {
	// Exactly `path SP eq SP "literal"`: the grammar allows no other spacing.
	sp := strings.IndexByte(raw, ' ')
	if sp <= 0 {
		return "", "", false
	}
	path, rest := raw[:sp], raw[sp+1:]
	if len(rest) < 3 || !strings.EqualFold(rest[:2], "eq") || rest[2] != ' ' {
		return "", "", false
	}
	lit := rest[3:]
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", "", false
	}
	value = lit[1 : len(lit)-1]
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '"' || c == '\\' || c < 0x20 {
			return "", "", false
		}
	}
	if !utf8.ValidString(value) {
		return "", "", false
	}
	for name := range indexed {
		if strings.EqualFold(path, name) {
			return name, value, true
		}
	}
	return "", "", false
}
