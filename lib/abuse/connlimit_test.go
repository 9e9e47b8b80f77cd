package abuse

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLimitListener: the connection over a bound is closed at once, a
// closed connection gives its slot back, and an exempt peer (a trusted
// proxy) is counted only against the total.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var refusedMu sync.Mutex
	refused := map[string]int{}
	ln := LimitListener(raw, ConnLimits{PerSource: 2, Total: 4, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}, OnRefuse: func(bound string) {
		refusedMu.Lock()
		defer refusedMu.Unlock()
		refused[bound]++
	}})
	open := func(key string) (total, fromKey int) {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		return ln.total, ln.open[key]
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	// admitted: the server side of an admitted connection arrives; refused: the
	// client reads EOF because the server closed it on accept.
	admitted := func(src string) net.Conn {
		dial(src)
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("connection from %s not accepted", src)
			return nil
		}
	}
	refuse := func(src string) {
		c := dial(src)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "connection from %s over the limit must be closed", src)
		require.Empty(t, accepted)
	}

	first := admitted("127.0.0.1")
	admitted("127.0.0.1")
	refuse("127.0.0.1")
	total, from := open("127.0.0.1")
	require.Equal(t, 2, total)
	require.Equal(t, 2, from)

	// Another source has its own budget.
	admitted("127.0.0.2")

	// Closing gives the slot back, once however often it is closed.
	require.NoError(t, first.Close())
	first.Close()
	admitted("127.0.0.1")
	refuse("127.0.0.1")

	// The exempt proxy is bound only by the total, which it fills.
	admitted("127.0.0.9")
	refuse("127.0.0.9")
	refuse("127.0.0.3")
	total, _ = open("")
	require.Equal(t, 4, total)
	refusedMu.Lock()
	defer refusedMu.Unlock()
	require.Equal(t, map[string]int{BoundSource: 2, BoundTotal: 2}, refused)
}

// TestLimitListenerReserve: once the sources holding many connections have
// taken all but the reserve, only a source holding fewer than
// ReservePerSource gets one of the rest.
func TestLimitListenerReserve(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := LimitListener(raw, ConnLimits{PerSource: 3, Total: 6, Reserve: 2, ReservePerSource: 1})
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	open := func(src string) bool {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		select {
		case <-accepted:
			return true
		case <-time.After(time.Second):
			// Refused: the server closed it.
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := c.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF)
			return false
		}
	}
	require.True(t, open("127.0.0.1"))
	require.True(t, open("127.0.0.1"))
	require.True(t, open("127.0.0.2"))
	require.True(t, open("127.0.0.2"))
	// Four open, two reserved: the flooders' third connections are refused.
	require.False(t, open("127.0.0.1"))
	require.False(t, open("127.0.0.2"))
	// A source holding none gets one, then no more.
	require.True(t, open("127.0.0.3"))
	require.False(t, open("127.0.0.3"))
	require.True(t, open("127.0.0.4"))
	require.False(t, open("127.0.0.5"), "the total holds")
}
