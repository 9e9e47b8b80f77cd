package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSkipString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    string
		i    int
		want int
	}{
		{name: "empty string", s: `""`, want: 2},
		{name: "plain", s: `"abc",1`, want: 5},
		{name: "escaped quote", s: `"a\"b"}`, want: 6},
		{name: "escaped backslash before the quote", s: `"a\\"]`, want: 5},
		{name: "unicode escape", s: `"\u0022\u005c"x`, want: 14},
		{name: "multibyte", s: `"é☃"`, want: len(`"é☃"`)},
		{name: "starts inside the text", s: `{"k":"v"}`, i: 5, want: 8},
		{name: "truncated", s: `"abc`, want: 4},
		{name: "truncated after a backslash", s: `"a\`, want: 3},
		{name: "truncated after an escaped quote", s: `"a\"`, want: 4},
		{name: "only the quote", s: `"`, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, SkipString(tc.s, tc.i))
			require.Equal(t, tc.want, SkipString([]byte(tc.s), tc.i))
		})
	}
}

func TestSkipValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		s           string
		i           int
		want        int
		wantCompact bool
	}{
		// Values that close themselves end just past their last byte.
		{name: "string", s: `"a,b}"`, want: 6, wantCompact: true},
		{name: "empty object", s: `{}`, want: 2, wantCompact: true},
		{name: "empty array", s: `[],1`, want: 2, wantCompact: true},
		{name: "nested", s: `{"a":[1,{"b":[]}],"c":{}},"d"`, want: 25, wantCompact: true},
		{name: "brackets and commas inside strings", s: `["]",",","}{"]`, want: 14, wantCompact: true},
		{name: "escaped quote inside a nested string", s: `{"a":"\"}"}x`, want: 11, wantCompact: true},
		{name: "escaped backslash inside a nested string", s: `["\\"]]`, want: 6, wantCompact: true},
		// Numbers and literals end at what follows them in their array or object.
		{name: "number before a comma", s: `[12.5e-3,1]`, i: 1, want: 8, wantCompact: true},
		{name: "literal before a brace", s: `{"a":true}`, i: 5, want: 9, wantCompact: true},
		{name: "null before a bracket", s: `[null]`, i: 1, want: 5, wantCompact: true},
		{name: "number at the end of the text", s: `-0`, want: 2, wantCompact: true},
		{name: "value in the middle", s: `[1,{"a":"b"},2]`, i: 3, want: 12, wantCompact: true},
		// Whitespace outside strings is reported and skipped; inside strings it is text.
		{name: "space in an object", s: `{"a": 1}`, want: 8},
		{name: "newline in an array", s: "[1,\n2]", want: 6},
		{name: "tab and return", s: "{\t\"a\":1\r}", want: 9},
		{name: "space after a number", s: `[1 ,2]`, i: 1, want: 3},
		{name: "space in a string", s: `" a\n b "`, want: 9, wantCompact: true},
		{name: "space after the value is not scanned", s: `{} `, want: 2, wantCompact: true},
		// Text that ends early: the end of the text.
		{name: "truncated object", s: `{"a":[1,2`, want: 9, wantCompact: true},
		{name: "truncated string in an array", s: `["abc`, want: 5, wantCompact: true},
		{name: "truncated after a backslash", s: `["a\`, want: 4, wantCompact: true},
		{name: "truncated with a space", s: `[1, 2`, want: 5},
		{name: "empty text", s: ``, want: 0, wantCompact: true},
		{name: "at the end of the text", s: `[1]`, i: 3, want: 3, wantCompact: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			end, compact := SkipValue(tc.s, tc.i)
			require.Equal(t, tc.want, end)
			require.Equal(t, tc.wantCompact, compact)
			end, compact = SkipValue([]byte(tc.s), tc.i)
			require.Equal(t, tc.want, end)
			require.Equal(t, tc.wantCompact, compact)
		})
	}
}

var valueSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-1.5e+10`, `true`, `false`, `null`,
	`{"a":1,"b":[true,null,"x"],"c":{"d":"\"}]"}}`,
	`["\\",{"\u0022":"\\\""},[[[]]]]`,
	"{ \"a\" : [ 1 , 2 ] ,\n\"b\":\t\"c d\" }",
	`"é\u2028<&>"`, ` 7 `, `[1 ]`, "[1,\r2]", `{"a":1}  `,
	`{"a":`, `["x`, `"\`, `}`, `,`, `nul`,
}

// FuzzSkipValue compares SkipValue with encoding/json: for any valid JSON value, set as the first
// element of an array, SkipValue ends where json.Decoder's input offset is after decoding it
// (for a number or literal, at the ',' or ']' after it, past only whitespace), reports it compact exactly when json.Compact leaves it unchanged, and agrees with
// SkipString on strings. On any text, valid or not, both functions return an index within the
// text and read strings and byte slices alike.
func FuzzSkipValue(f *testing.F) {
	for _, s := range valueSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every start index is a scan of the rest: quadratic, so long inputs (which the mutator
		// grows to, and which once held make test's short fuzz pass for a minute) are cut; the
		// scanner's loops do not depend on length.
		if len(data) > 4096 {
			data = data[:4096]
		}
		// Any text, from any index: no panic, an end in [i, len], the same for both forms.
		str := string(data)
		for i := range data {
			end, compact := SkipValue(data, i)
			endS, compactS := SkipValue(str, i)
			if end < i || end > len(data) || end != endS || compact != compactS {
				t.Fatalf("SkipValue(%q, %d) = %d, %v; over a string %d, %v", data, i, end, compact, endS, compactS)
			}
			if data[i] == '"' {
				end := SkipString(data, i)
				if end <= i || end > len(data) || end != SkipString(str, i) {
					t.Fatalf("SkipString(%q, %d) = %d; over a string %d", data, i, end, SkipString(str, i))
				}
			}
		}

		v := bytes.TrimLeft(data, " \t\r\n")
		if !json.Valid(v) {
			return
		}
		text := append(append([]byte{'['}, v...), ",0]"...)
		dec := json.NewDecoder(bytes.NewReader(text))
		tok, err := dec.Token()
		require.NoError(t, err)
		require.Equal(t, json.Delim('['), tok)
		var raw json.RawMessage
		require.NoError(t, dec.Decode(&raw))
		want := int(dec.InputOffset())

		end, compact := SkipValue(text, 1)
		switch v[0] {
		case '"', '{', '[':
			require.Equal(t, want, end, "%q", text)
		default:
			// Past the decoder's end there is only whitespace, then what ends the element.
			require.LessOrEqual(t, want, end, "%q", text)
			require.Empty(t, bytes.Trim(text[want:end], " \t\r\n"), "%q", text)
			require.Contains(t, []byte{',', ']'}, text[end], "%q", text)
		}
		var compacted bytes.Buffer
		require.NoError(t, json.Compact(&compacted, text[1:end]))
		require.Equal(t, bytes.Equal(compacted.Bytes(), text[1:end]), compact, "%q", text)

		// The compact form ends exactly where the decoder says, inside an array, inside an
		// object and alone; as a whole, what SkipValue spans is valid JSON.
		c := compacted.Bytes()
		for _, tc := range []struct{ before, after string }{
			{`[`, `]`}, {`[`, `,1]`}, {`{"k":`, `}`}, {`{"k":`, `,"l":2}`}, {``, ``},
		} {
			text := append(append([]byte(tc.before), c...), tc.after...)
			end, compact := SkipValue(text, len(tc.before))
			require.True(t, compact, "%q", text)
			require.Equal(t, len(tc.before)+len(c), end, "%q", text)
			require.True(t, json.Valid(text[len(tc.before):end]), "%q", text)
		}
		if c[0] == '"' {
			require.Equal(t, len(c), SkipString(c, 0))
		}
	})
}
