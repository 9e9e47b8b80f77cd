package protocol

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// TestReadAllMatchesIOReadAll holds readAll, under the body limit ReadBody puts on it, to
// io.ReadAll: the same bytes and the same error, whatever the Content-Length says (right, too
// small, too large, unknown) and however the body arrives (one byte at a time, an error in the
// middle, past the limit).
func TestReadAllMatchesIOReadAll(t *testing.T) {
	t.Parallel()
	errBroken := errors.New("connection broken")
	bodies := []string{"", "{}", strings.Repeat("a", 511), strings.Repeat("b", 512), strings.Repeat("c", 513),
		strings.Repeat("d", 4096), strings.Repeat("e", MaxBodyBytes), strings.Repeat("f", MaxBodyBytes+1), strings.Repeat("g", MaxBodyBytes+5000)}
	readers := map[string]func(string) io.Reader{
		"whole":        func(s string) io.Reader { return strings.NewReader(s) },
		"byte a time":  func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half a time":  func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"data and EOF": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"broken": func(s string) io.Reader {
			return io.MultiReader(strings.NewReader(s[:len(s)/2]), iotest.ErrReader(errBroken))
		},
	}
	for _, body := range bodies {
		n := int64(len(body))
		for _, cl := range []int64{-1, 0, n / 2, n - 1, n, n + 1, 2*n + 7} {
			if cl < -1 {
				continue
			}
			for name, reader := range readers {
				limited := func() io.Reader {
					return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(reader(body)), MaxBodyBytes)
				}
				want, wantErr := io.ReadAll(limited())
				got, gotErr := readAll(limited(), cl)
				require.Equal(t, want, got, "body %d bytes, Content-Length %d, %s", n, cl, name)
				require.Equal(t, wantErr, gotErr, "body %d bytes, Content-Length %d, %s", n, cl, name)
			}
		}
	}
}

// FuzzQueryMatchesURLQuery holds Query to url.URL.Query on any raw query: the same keys and
// values in the same order, whatever the escapes (bad ones too), repeats, empty pairs,
// semicolons and lengths.
func FuzzQueryMatchesURLQuery(f *testing.F) {
	for _, q := range []string{"", "filter=userName+eq+%22jane%40example.com%22&startIndex=1&count=100",
		"a=1&a=2&b&&c=%zz&d=%41", "x;y=1&z=2", "=v&k=", "attributes=userName,emails&excludedAttributes=",
		"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8", "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9", "%=1&k=%"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u := &url.URL{RawQuery: raw}
		want := u.Query()
		got := Query(u)
		require.Equal(t, want, got)
		// Appending to one key's values leaves the others alone.
		for k := range got {
			got[k] = append(got[k], "appended")
		}
		for k, v := range want {
			require.Equal(t, append(slices.Clone(v), "appended"), got[k])
		}
	})
}
