package safetext

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		in       string
		nameOK   bool
		textOK   bool
		badRune  rune
		badIndex int
	}{
		{name: "plain", in: "alice@example.com", nameOK: true, textOK: true},
		{name: "printable unicode", in: "Zoë 李 <b>&amp;</b> 'x' \"y\" \uFFFD 😀 \u200f", nameOK: true, textOK: true},
		{name: "ESC", in: "a\x1b[31mb", badRune: 0x1b, badIndex: 1},
		{name: "OSC 52", in: "\x1b]52;c;aGk=\x07", badRune: 0x1b},
		{name: "NUL", in: "ab\x00", badRune: 0, badIndex: 2},
		{name: "CR", in: "a\rb", badRune: '\r', badIndex: 1},
		{name: "backspace", in: "a\bb", badRune: '\b', badIndex: 1},
		{name: "DEL", in: "a\x7f", badRune: 0x7f, badIndex: 1},
		{name: "C1 CSI", in: "a\u009b31m", badRune: 0x9b, badIndex: 1},
		{name: "RLO", in: "gro\u202eup", badRune: 0x202e, badIndex: 3},
		{name: "isolate", in: "\u2066x", badRune: 0x2066},
		{name: "line separator", in: "a\u2028b\u2029", nameOK: true, textOK: true},
		{name: "tab", in: "a\tb", textOK: true, badRune: '\t', badIndex: 1},
		{name: "newline", in: "street\ncity", textOK: true, badRune: '\n', badIndex: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			check := func(err error, ok bool) {
				if ok {
					require.NoError(t, err)
					return
				}
				var e *Error
				require.True(t, errors.As(err, &e), "%v", err)
				require.Equal(t, tc.badRune, e.Rune)
				require.Equal(t, tc.badIndex, e.Offset)
				require.Contains(t, err.Error(), "field")
				require.NotContains(t, err.Error(), tc.in, "the error must not repeat the value")
			}
			check(CheckName("field", tc.in), tc.nameOK)
			if tc.badRune == '\t' || tc.badRune == '\n' {
				require.NoError(t, CheckText("field", tc.in))
			} else {
				check(CheckText("field", tc.in), tc.textOK)
			}
		})
	}
}

func TestCheckInvalidUTF8(t *testing.T) {
	t.Parallel()
	err := CheckName("userName", "ab\xff")
	require.ErrorContains(t, err, "userName is not valid UTF-8 (at byte 2)")
	require.ErrorContains(t, CheckText("x", "\xc2"), "not valid UTF-8")
}

func TestEscape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":                "plain",
		"tab\tand\nline":       "tab\tand\nline",
		"\x1b]52;c;aGk=\x07":   `\u001b]52;c;aGk=\u0007`,
		"a\u009b31mb":          `a\u009b31mb`,
		"x\u202ey\x00z\r\x7f":  `x\u202ey\u0000z\u000d\u007f`,
		"bad\xffbyte\xc2":      `bad\xffbyte\xc2`,
		"ok \uFFFD 😀 <script>": "ok \uFFFD 😀 <script>",
	} {
		require.Equal(t, want, Escape(in), "%q", in)
	}
}

// TestWriterSplitsRunes: a character cut between two writes (tabwriter and
// fmt write in pieces) is escaped whole, and Flush writes a dangling one.
func TestWriterSplitsRunes(t *testing.T) {
	t.Parallel()
	in := "a\u009bb\u202ec\x1bd李😀"
	for cut := 0; cut <= len(in); cut++ {
		var out bytes.Buffer
		w := &Writer{W: &out}
		n, err := w.Write([]byte(in[:cut]))
		require.NoError(t, err)
		require.Equal(t, cut, n)
		_, err = w.Write([]byte(in[cut:]))
		require.NoError(t, err)
		require.NoError(t, w.Flush())
		require.Equal(t, `a\u009bb\u202ec\u001bd李😀`, out.String(), "cut at %d", cut)
	}
	var out bytes.Buffer
	w := &Writer{W: &out}
	_, err := w.Write([]byte("x\xe2\x80"))
	require.NoError(t, err)
	require.Equal(t, "x", out.String())
	require.NoError(t, w.Flush())
	require.Equal(t, `x\xe2\x80`, out.String())
	require.False(t, strings.ContainsRune(out.String(), 0x1b))
}

func FuzzEscape(f *testing.F) {
	f.Add("a\x1b]52;c;aGk=\x07\u202e\u009b\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i, r := range e {
			if Unsafe(r) && r != '\t' && r != '\n' {
				t.Fatalf("Escape(%q) = %q keeps U+%04X at %d", s, e, r, i)
			}
		}
		if CheckText("f", s) == nil && e != s {
			t.Fatalf("Escape changed text CheckText accepts: %q -> %q", s, e)
		}
	})
}

// TestPrefix: a cut never splits a character, and a short value is kept.
func TestPrefix(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", Prefix("abc", 5))
	require.Equal(t, "ab", Prefix("abc", 2))
	require.Equal(t, "a", Prefix("aé", 2), "é is two bytes: the cut moves before it")
	require.Equal(t, "aé", Prefix("aéb", 3))
	require.Empty(t, Prefix("é", 1))
}
