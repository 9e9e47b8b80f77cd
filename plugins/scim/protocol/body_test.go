package protocol

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
