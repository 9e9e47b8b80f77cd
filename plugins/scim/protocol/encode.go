package protocol

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// A direct JSON encoder for the values SCIM responses are made of (map[string]any, []any,
// strings, booleans, json.Number from UseNumber decoding). encoding/json reflects over every map
// and interface value and sorts keys through reflect.Value; on the lookup path that cost as much
// CPU as the rest of the response building. The output is byte-for-byte what json.Marshal gives
// (keys sorted, HTML-escaped strings, invalid UTF-8 replaced); any other type is handed to
// json.Marshal, so nothing is ever encoded differently.

// bufPool recycles response buffers; maxPooledBuf keeps one huge list page from pinning memory.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledBuf = 64 << 10

// Marshal is json.Marshal, byte for byte, by the direct encoder: for the values a decoded request
// is made of (the attributes a write stores), without encoding/json's reflection over every map.
func Marshal(v any) ([]byte, error) {
	return appendJSON(nil, v)
}

// appendJSON appends the JSON encoding of v to buf.
func appendJSON(buf []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case string:
		return appendString(buf, t), nil
	case bool:
		if t {
			return append(buf, "true"...), nil
		}
		return append(buf, "false"...), nil
	case map[string]any:
		return appendObject(buf, t)
	case []any:
		return appendArray(buf, t, appendJSON)
	case []string:
		return appendArray(buf, t, func(buf []byte, s string) ([]byte, error) { return appendString(buf, s), nil })
	default:
		// json.Number, numbers, structs...: rare in a response, and encoding/json knows the rules.
		b, err := json.Marshal(v)
		if err != nil {
			return buf, err
		}
		return append(buf, b...), nil
	}
}

// appendArray writes s as a JSON array, each element by appendElem; a nil slice is null, as
// encoding/json writes it.
func appendArray[E any](buf []byte, s []E, appendElem func([]byte, E) ([]byte, error)) ([]byte, error) {
	if s == nil {
		return append(buf, "null"...), nil
	}
	buf = append(buf, '[')
	for i, e := range s {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if buf, err = appendElem(buf, e); err != nil {
			return buf, err
		}
	}
	return append(buf, ']'), nil
}

// appendObject writes m with its keys sorted, as encoding/json does.
func appendObject(buf []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(buf, "null"...), nil
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		var err error
		if buf, err = appendJSON(buf, m[k]); err != nil {
			return buf, err
		}
	}
	return append(buf, '}'), nil
}

// appendListResponse writes r with the field order and names of its struct tags.
func appendListResponse(buf []byte, r *ListResponse) ([]byte, error) {
	buf = append(buf, `{"schemas":`...)
	buf, _ = appendJSON(buf, r.Schemas)
	buf = appendListCounts(buf, r.TotalResults, r.StartIndex, r.ItemsPerPage)
	if r.Resources == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, '[')
		for i, res := range r.Resources {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendObject(buf, res); err != nil {
				return buf, err
			}
		}
		buf = append(buf, ']')
	}
	return append(buf, '}'), nil
}

func appendListCounts(buf []byte, total, startIndex, itemsPerPage int) []byte {
	buf = append(buf, `,"totalResults":`...)
	buf = appendInt(buf, total)
	buf = append(buf, `,"startIndex":`...)
	buf = appendInt(buf, startIndex)
	buf = append(buf, `,"itemsPerPage":`...)
	buf = appendInt(buf, itemsPerPage)
	return append(buf, `,"Resources":`...)
}

// AppendListStart writes what NewListResponse(total, page, resources) encodes to before its first
// resource, for items resources: a caller that encodes resources itself (AppendString,
// IsCanonicalObject) writes them, separated by commas, then AppendListEnd.
func AppendListStart(buf []byte, total int, page Page, items int) []byte {
	buf = append(buf, `{"schemas":[`...)
	buf = appendString(buf, ListResponseSchema)
	buf = append(buf, ']')
	buf = appendListCounts(buf, total, page.StartIndex, items)
	return append(buf, '[')
}

// AppendListEnd closes what AppendListStart opened.
func AppendListEnd(buf []byte) []byte { return append(buf, "]}"...) }

func appendInt(buf []byte, n int) []byte { return strconv.AppendInt(buf, int64(n), 10) }

const hexDigits = "0123456789abcdef"

// AppendString writes the concatenation of parts as a JSON string, escaped as every string of a
// response is (see appendString), without building the concatenation when it can.
func AppendString(buf []byte, parts ...string) []byte {
	for _, p := range parts {
		if !utf8.ValidString(p) {
			// A sequence cut between two parts must be replaced as one.
			return appendString(buf, strings.Join(parts, ""))
		}
	}
	buf = append(buf, '"')
	for _, p := range parts {
		buf = appendStringBody(buf, p)
	}
	return append(buf, '"')
}

// appendString writes s as a JSON string with encoding/json's escaping: HTML-significant
// characters, control characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = appendStringBody(buf, s)
	return append(buf, '"')
}

// appendStringBody is appendString without the quotes.
func appendStringBody(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}
