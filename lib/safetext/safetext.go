// Package safetext is the one rule on which characters of text from outside
// (an identity provider, a SCIM client, the Okta API) may reach a person:
// a browser, an operator's terminal, a log line, an SSH session. A leaf: it
// imports nothing of ours.
//
// Unsafe are the characters that are never text in a name or a profile and
// that a terminal or a reader acts on instead of showing: the C0 controls
// (ESC starts ANSI and OSC sequences, OSC 52 writes the clipboard; NUL cuts C
// strings; CR and BS overwrite what was printed), DEL, the C1 controls (U+009B
// is a one-character CSI), the bidirectional embeddings, overrides and
// isolates (U+202A-U+202E, U+2066-U+2069: "Trojan Source" reordering). The
// line and paragraph separators U+2028 and U+2029 are not among them: no
// terminal acts on them and every encoder we use escapes them. Check refuses
// the unsafe characters where text enters; Escape and Writer make them
// visible where text leaves.
package safetext

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Unsafe reports whether r must never be shown or stored as it is. Tab and
// line feed are unsafe too: callers that allow them in free text say so
// (CheckText, Writer).
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	}
	return false
}

// CheckName refuses s when it holds an unsafe character or is not UTF-8:
// for identifiers (userName, externalId, a group's name, a trait value),
// which are one line of text and never hold a tab or a line break. field
// names the value in the error (for example "userName").
func CheckName(field, s string) error {
	return check(field, s, false)
}

// CheckText refuses s when it holds an unsafe character other than tab and
// line feed, or is not UTF-8: for free text (a postal address may span lines).
func CheckText(field, s string) error {
	return check(field, s, true)
}

func check(field, s string, lines bool) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return &Error{Field: field, Offset: i, invalid: true}
		case lines && (r == '\t' || r == '\n'):
		case Unsafe(r):
			return &Error{Field: field, Offset: i, Rune: r}
		}
	}
	return nil
}

// Error says which character of which value was refused, in words a client
// can act on. It never repeats the value itself.
type Error struct {
	// Field names the value.
	Field string
	// Offset is the byte offset of the character.
	Offset int
	// Rune is the character refused.
	Rune    rune
	invalid bool
}

func (e *Error) Error() string {
	if e.invalid {
		return fmt.Sprintf("%s is not valid UTF-8 (at byte %d)", e.Field, e.Offset)
	}
	return fmt.Sprintf("%s holds the control character U+%04X at byte %d: control characters and bidirectional overrides are refused", e.Field, e.Rune, e.Offset)
}

// Escape returns s with every unsafe character but tab and line feed written
// as \uXXXX and every byte that is not UTF-8 as \xXX, so that a person sees
// what was sent and nothing acts on it. The escapes are also valid inside a
// JSON string and a YAML double-quoted string.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	escapeTo(&b, s)
	return b.String()
}

func needsEscape(s string) bool {
	for i, r := range s {
		if (Unsafe(r) && r != '\t' && r != '\n') || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return true
		}
	}
	return false
}

func escapeTo(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, s[i])
		case Unsafe(r) && r != '\t' && r != '\n':
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

// Writer escapes, as Escape does, everything written through it to W: put it
// in front of a terminal. A character split across two writes is held until
// the next write or Flush.
type Writer struct {
	W       io.Writer
	pending []byte
}

// Write escapes p and writes it to W. It reports len(p) written on success.
func (w *Writer) Write(p []byte) (int, error) {
	data := p
	if len(w.pending) > 0 {
		data = append(w.pending, p...)
		w.pending = nil
	}
	// Hold back a trailing incomplete UTF-8 sequence: the rest of it may
	// come with the next write.
	cut := len(data)
	for k := 1; k <= utf8.UTFMax-1 && k <= len(data); k++ {
		c := data[len(data)-k]
		if utf8.RuneStart(c) {
			if c >= utf8.RuneSelf && !utf8.FullRune(data[len(data)-k:]) {
				cut = len(data) - k
			}
			break
		}
	}
	w.pending = append([]byte(nil), data[cut:]...)
	if _, err := io.WriteString(w.W, Escape(string(data[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a held incomplete character, escaped byte by byte.
func (w *Writer) Flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	s := Escape(string(w.pending))
	w.pending = nil
	_, err := io.WriteString(w.W, s)
	return err
}

// Prefix returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 character: where a value from outside is cut before it is
// logged or audited.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
