package scimprov

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/lib/jsonscan"
)

// cleanCanonical is cleanAttributes, without encoding/json's reflection, for raw that
// json.Marshal of its decoding (a map[string]json.RawMessage) writes back byte for byte: what the
// SCIM server sends (it encodes the attributes with json.Marshal) and what the store keeps. ok is
// false for anything else, which cleanAttributes hands to the general path. For such text the
// general path's output is raw without the dropped members, which is what this writes:
//
//   - raw is one valid JSON object (json.Valid, the same scanner json.Unmarshal runs), so the
//     general path decodes it without error;
//   - no whitespace outside strings, and none of the bytes or runes json.Marshal escapes for HTML
//     (<, >, &, U+2028, U+2029) anywhere: each value is already what json.Marshal writes for a
//     json.RawMessage (it compacts and HTML-escapes, and copies the rest verbatim);
//   - every key is valid UTF-8 without escapes, so it decodes to its own bytes and encodes back to
//     them, and the keys are strictly increasing, so no key repeats (the decode would keep the
//     last) and the members are in json.Marshal's order (it sorts map keys by their bytes).
func cleanCanonical(raw []byte, drop []string) (out json.RawMessage, ok bool) {
	if len(raw) < 2 || raw[0] != '{' || !json.Valid(raw) ||
		bytes.ContainsAny(raw, "<>&") || bytes.Contains(raw, []byte("\u2028")) || bytes.Contains(raw, []byte("\u2029")) {
		return nil, false
	}
	out = make([]byte, 1, len(raw))
	out[0] = '{'
	if string(raw) == "{}" {
		return append(out, '}'), true
	}
	var prev []byte
	kept := 0
	for i := 1; ; {
		if raw[i] != '"' {
			return nil, false
		}
		keyEnd := jsonscan.SkipString(raw, i)
		key := raw[i+1 : keyEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) || (prev != nil && bytes.Compare(prev, key) >= 0) {
			return nil, false
		}
		prev = key
		if keyEnd >= len(raw) || raw[keyEnd] != ':' {
			return nil, false
		}
		// A value that runs to the end of raw leaves no room for the object's '}'.
		end, compact := jsonscan.SkipValue(raw, keyEnd+1)
		if !compact || end >= len(raw) {
			return nil, false
		}
		if !dropped(string(key), drop) {
			if kept > 0 {
				out = append(out, ',')
			}
			out = append(out, raw[i:end]...)
			kept++
		}
		switch {
		case raw[end] == ',':
			i = end + 1
		case raw[end] == '}' && end+1 == len(raw):
			return append(out, '}'), true
		default:
			return nil, false
		}
	}
}

// dropped reports whether key is one of drop, ignoring case as cleanAttributes does.
func dropped(key string, drop []string) bool {
	for _, d := range drop {
		if strings.EqualFold(key, d) {
			return true
		}
	}
	return false
}
