package protocol

import (
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendJSONMatchesMarshal checks that the direct encoder writes exactly what json.Marshal
// writes, since responses must not change by a byte.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	t.Parallel()
	values := map[string]any{
		"nil":     nil,
		"escapes": "a\"b\\c\n\r\t\b\f\x00\x1f\x7f<tag>&amp; é \u2028\u2029 \xff\xfe ok 😀",
		"object": map[string]any{
			"userName": "u@example.com", "active": true, "zeta": false, "Alpha": nil,
			"name":   map[string]any{"givenName": "U", "familyName": "Doe"},
			"emails": []any{map[string]any{"primary": true, "value": "u@example.com"}},
			"n":      json.Number("12.5e3"), "f": 1.5, "i": 7, "empty": map[string]any{}, "none": []any{},
			"nilMap": map[string]any(nil), "nilSlice": []any(nil), "strs": []string{"a", "<b>"},
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"employeeNumber": "1"},
		},
		"list":      NewListResponse(3, Page{StartIndex: 2, Count: 1}, []map[string]any{{"id": "x", "b": []any{"1", true}}}),
		"emptyList": NewListResponse(0, Page{StartIndex: 1, Count: 100}, nil),
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(v)
			require.NoError(t, err)
			var got []byte
			if lr, ok := v.(*ListResponse); ok {
				got, err = appendListResponse(nil, lr)
			} else {
				got, err = appendJSON(nil, v)
			}
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
	t.Run("random strings", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(1, 2))
		alphabet := []string{"a", "Z", "\"", "\\", "<", ">", "&", "\n", "\x01", "\x7f", "é", "\u2028", "\u2029", "\xff", "\xe2\x80", "😀", " "}
		for range 2000 {
			s := ""
			for range rng.IntN(12) {
				s += alphabet[rng.IntN(len(alphabet))]
			}
			want, err := json.Marshal(map[string]any{s: s})
			require.NoError(t, err)
			got, err := appendJSON(nil, map[string]any{s: s})
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "%q", s)
		}
	})
}

// TestWriteJSONBadValue checks that an unencodable value is an error, not a partial body.
func TestWriteJSONBadValue(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	err := WriteJSON(rec, 200, map[string]any{"bad": make(chan int)})
	require.Error(t, err)
	require.Empty(t, rec.Body.String())
}

// TestAppendStringParts: parts are escaped as their concatenation is, even when a UTF-8
// sequence is cut between two of them.
func TestAppendStringParts(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{
		{}, {""}, {"a<b", "&", "\u2028c"}, {"\xe2\x80", "\xa8"}, {"é\xe2", "\x80", "x"}, {"\xff", "ok"},
	} {
		whole := ""
		for _, p := range parts {
			whole += p
		}
		require.Equal(t, string(appendString(nil, whole)), string(AppendString(nil, parts...)), "%q", parts)
	}
}

// TestAppendListStart: a list written in parts is the list NewListResponse encodes to.
func TestAppendListStart(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2} {
		resources := make([]map[string]any, n)
		buf := AppendListStart(nil, 7, Page{StartIndex: 3, Count: 10}, n)
		for i := range resources {
			resources[i] = map[string]any{"id": strconv.Itoa(i)}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"id":"`+strconv.Itoa(i)+`"}`...)
		}
		want, err := appendListResponse(nil, NewListResponse(7, Page{StartIndex: 3, Count: 10}, resources))
		require.NoError(t, err)
		require.Equal(t, string(want), string(AppendListEnd(buf)))
	}
}
