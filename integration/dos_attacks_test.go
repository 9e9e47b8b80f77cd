package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// dosNoFile is the descriptor limit the server runs with in TestDoSConnectionFloods: low enough
// that the flood below would take every descriptor of an unbounded server, so that the test shows
// the bounds, not the machine's limit, keeping the server available.
const dosNoFile = 4096

// TestDoSConnectionFloods attacks the real server's listeners as an unauthenticated client from a
// few loopback addresses, with connections that never finish a handshake (slowloris), while Okta
// deactivates a user with a live OpenSSH session:
//   - an idle connection to the auth gRPC or the web listener is cut after its handshake timeout;
//   - one source holds at most its share of the SSH listener (the next connection is closed before
//     any SSH banner) while another source is still served;
//   - a flood of idle connections to all three listeners, more than the server's descriptors,
//     leaves it able to accept Okta's fresh connection, deactivate the user and end the live
//     session in the usual time, and the server holds no more descriptors than its bounds.
func TestDoSConnectionFloods(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < 2*dosNoFile+1024 {
		t.Skipf("the flood needs %d descriptors here, the limit is %d", 2*dosNoFile+1024, lim.Cur)
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	// The real binary, under a lower descriptor limit (exec keeps the process id).
	limited := filepath.Join(work, "gatehouse-limited")
	require.NoError(t, os.WriteFile(limited, []byte("#!/bin/sh\nulimit -n "+strconv.Itoa(dosNoFile)+" || exit 1\nexec '"+gatehouseBin+"' \"$@\"\n"), 0o700))
	logs := &syncBuffer{}
	srv := startGatehouse(t, limited, dataDir, logs, "--log-level", "info")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse logs:\n%s", logs.String())
		}
	})
	pid := srv.cmd.Process.Pid
	authAddrB, err := os.ReadFile(filepath.Join(dataDir, "auth_addr"))
	require.NoError(t, err)
	authAddr := strings.TrimSpace(string(authAddrB))
	host, port := srv.sshAddr(t)
	sshAddr := net.JoinHostPort(host, port)

	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		connsMu.Lock()
		defer connsMu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	dialFrom := func(src, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err == nil {
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
		return c, err
	}
	// cutAfter: how long the server keeps an idle connection (one that never starts its handshake).
	cutAfter := func(src, addr string) time.Duration {
		c, err := dialFrom(src, addr)
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
		_, err = io.Copy(io.Discard, c)
		require.NoError(t, err, "the server must close the idle connection itself")
		return time.Since(start)
	}

	// Slowloris on the handshakes of the auth and web listeners, timed while the rest runs.
	var idle sync.WaitGroup
	var authIdle, webIdle time.Duration
	idle.Go(func() { authIdle = cutAfter("127.0.0.6", authAddr) })
	idle.Go(func() { webIdle = cutAfter("127.0.0.7", srv.webAddr) })

	// One source's share of the SSH listener: every admitted connection gets the banner; the next
	// one is closed before it.
	banner := func(c net.Conn) (string, error) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	const sshPerSource = 256 // cmd/gatehouse/internal/process sshConnsPerSource
	var held []net.Conn
	for i := range sshPerSource {
		c, err := dialFrom("127.0.0.2", sshAddr)
		require.NoError(t, err)
		line, err := banner(c)
		require.NoError(t, err, "connection %d", i)
		require.True(t, strings.HasPrefix(line, "SSH-2.0-Gatehouse"), line)
		held = append(held, c)
	}
	over, err := dialFrom("127.0.0.2", sshAddr)
	require.NoError(t, err)
	line, err := banner(over)
	require.ErrorIs(t, err, io.EOF, "connection %d from one source must be closed, got %q", sshPerSource+1, line)
	other, err := dialFrom("127.0.0.3", sshAddr)
	require.NoError(t, err)
	line, err = banner(other)
	require.NoError(t, err, "another source is still served")
	require.True(t, strings.HasPrefix(line, "SSH-2.0-Gatehouse"), line)
	for _, c := range append(held, other, over) {
		c.Close()
	}

	// A user with a live session, to deactivate during the flood.
	_, admin := gatectlOn(t, gatectlBin, dataDir)
	idp := samltest.NewIdP(t, samltest.Options{})
	token := ssoSetup(t, srv, admin, idp, work)
	okta := newSCIMClient(t, srv, "okta", token, 2)
	const name = "flooded@example.com"
	id, _ := okta.do(http.MethodPost, "/Users", oktaUser(name, "00uflooded")).expect(t, http.StatusCreated).body["id"].(string)
	require.NotEmpty(t, id)
	key := filepath.Join(work, "flooded")
	admin("auth", "sign", "--user", name, "--out", key)
	live := startLongSSH(t, host, port, key, sshLogin(t))
	quiet := time.Now()
	newSCIMClient(t, srv, "okta", token, 1).do(http.MethodGet, "/Users/"+id, nil).expect(t, http.StatusOK)
	usual := time.Since(quiet)

	// The flood: idle connections from four sources to every listener, more in all than the
	// server's descriptors.
	const perListener = 600
	var flood sync.WaitGroup
	for s := 2; s <= 5; s++ {
		for _, addr := range []string{sshAddr, authAddr, srv.webAddr} {
			flood.Go(func() {
				for range perListener {
					if _, err := dialFrom("127.0.0."+strconv.Itoa(s), addr); err != nil {
						return
					}
				}
			})
		}
	}
	flood.Wait()
	t.Logf("flood: %d connections opened", len(conns))
	require.Greater(t, len(conns), dosNoFile, "the flood must be larger than the server's descriptors")
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	require.NoError(t, err)
	t.Logf("server descriptors under the flood: %d of %d", len(fds), dosNoFile)
	require.Less(t, len(fds), dosNoFile*3/4, "the listeners hold at most half the descriptors")

	// Okta, on a fresh connection, deactivates the user; the live session ends.
	sent := time.Now()
	r := newSCIMClient(t, srv, "okta", token, 1).do(http.MethodPatch, "/Users/"+id, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})).expect(t, http.StatusOK)
	require.Equal(t, false, r.body["active"])
	select {
	case <-live.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the SSH session outlived the deactivation by 5s under a connection flood; stderr: %s", live.stderr.String())
	}
	took := live.ended.Sub(sent)
	t.Logf("under the flood, the deactivation ended the live session %v after the request (a quiet GET: %v)", took, usual)
	require.Less(t, took, usual+2*time.Second)
	require.Contains(t, logs.String(), `msg="Refusing connections."`)

	idle.Wait()
	t.Logf("idle connections cut after: auth %v, web %v", authIdle, webIdle)
	require.Less(t, authIdle, 12*time.Second, "auth gRPC handshake timeout")
	require.Less(t, webIdle, 12*time.Second, "web handshake timeout")
}

// TestDoSHTTP2StreamFlood: HTTP/2 streams whose bodies never come, to the password login (which
// reads its body before anything else), from one source: beyond the source's bound of requests in
// flight (256) each is answered 429 at once instead of holding a handler (and its memory) until
// the read timeout; another source is still served.
func TestDoSHTTP2StreamFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, _ := buildBinaries(t)
	srv := startGatehouseLogged(t, gatehouseBin, t.TempDir(), "--log-level", "info")

	const perSource, perConn, conns = 256, 150, 2 // lib/web DefaultMaxHTTP2RequestsPerSource
	statuses := make(chan string, perConn*conns)
	for range conns {
		fr := dialHTTP2(t, "127.0.0.2", srv.webAddr)
		go func() {
			dec := hpack.NewDecoder(4096, nil)
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if h, ok := f.(*http2.HeadersFrame); ok {
					fields, err := dec.DecodeFull(h.HeaderBlockFragment())
					if err != nil {
						return
					}
					for _, hf := range fields {
						if hf.Name == ":status" {
							statuses <- hf.Value
						}
					}
				}
			}
		}()
		for i := range perConn {
			writeHTTP2Request(t, fr, uint32(2*i+1), http.MethodPost, "/v1/webapi/sessions", "60000")
			require.NoError(t, fr.WriteData(uint32(2*i+1), false, []byte("{")))
		}
	}
	want := perConn*conns - perSource
	got := map[string]int{}
	deadline := time.After(10 * time.Second)
	for got["429"] < want {
		select {
		case s := <-statuses:
			got[s]++
		case <-deadline:
			t.Fatalf("after 10 s, answers %v; want %d times 429 (the other %d wait for their bodies)", got, want, perSource)
		}
	}
	require.Equal(t, map[string]int{"429": want}, got, "the streams within the bound wait for their bodies")

	// Another source, over HTTP/2 too, is served.
	fr := dialHTTP2(t, "127.0.0.3", srv.webAddr)
	writeHTTP2Request(t, fr, 1, http.MethodGet, "/healthz", "")
	dec := hpack.NewDecoder(4096, nil)
	require.NoError(t, fr.Conn().SetReadDeadline(time.Now().Add(10*time.Second)))
	for {
		f, err := fr.ReadFrame()
		require.NoError(t, err)
		if h, ok := f.(*http2.HeadersFrame); ok {
			fields, err := dec.DecodeFull(h.HeaderBlockFragment())
			require.NoError(t, err)
			require.Equal(t, ":status", fields[0].Name)
			require.Equal(t, "200", fields[0].Value)
			return
		}
	}
}

// framerConn is an HTTP/2 framer with its connection.
type framerConn struct {
	*http2.Framer
	conn net.Conn
}

func (f framerConn) Conn() net.Conn { return f.conn }

// dialHTTP2 opens an HTTP/2 connection from src (without verifying the server: only the protocol
// matters here) and sends the preface; it acknowledges nothing, which HTTP/2 allows for a while.
func dialHTTP2(t *testing.T, src, addr string) framerConn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // the attacker trusts anything
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol, "HTTP/2 is on")
	_, err = c.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	fr := http2.NewFramer(c, c)
	require.NoError(t, fr.WriteSettings())
	return framerConn{Framer: fr, conn: c}
}

// writeHTTP2Request opens stream id with a request's headers, its body left open when
// contentLength is set.
func writeHTTP2Request(t *testing.T, fr framerConn, id uint32, method, path, contentLength string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"}, {Name: ":path", Value: path}, {Name: ":authority", Value: "localhost"}}
	if contentLength != "" {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: "application/json"}, hpack.HeaderField{Name: "content-length", Value: contentLength})
	}
	for _, f := range fields {
		require.NoError(t, enc.WriteField(f))
	}
	require.NoError(t, fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: contentLength == ""}))
}
