// Command okta-standin is the local Okta of `make demo`: a SAML identity
// provider with signed assertions, a SCIM client that provisions Gatehouse
// with the requests Okta sends, and a page with a few people to assign,
// deactivate and put in groups. It is a demo tool, never part of a
// Gatehouse deployment: nothing starts it but `make demo` or a person.
//
// With --start-gatehouse BIN it also starts `BIN start` on SQLite in
// --data-dir and stops it on exit (that is what `make demo` does); without
// it, it sets up and provisions a Gatehouse already running with that
// --data-dir. See docs/demo.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/cmd/okta-standin/internal/standin"
)

// Files Gatehouse writes in its data dir once its listeners are bound.
var addrFiles = []string{"auth_addr", "web_addr", "ssh_addr"}

// gatehouseStartTimeout bounds Gatehouse's start (the first start makes the
// cluster's CAs and the web certificate).
const gatehouseStartTimeout = 60 * time.Second

type options struct {
	dataDir, listen, gatehouseURL, login, gatectl string
	startGatehouse                                string
	webAddr, authAddr, sshAddr, publicAddr        string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR: "+errline.Of(err))
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("okta-standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dataDir, "data-dir", "./demo-data", "Gatehouse's data dir (operator identity, auth address, web certificate)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:3090", "the stand-in's own address (the page and the IdP; plain HTTP on loopback)")
	fs.StringVar(&o.gatehouseURL, "gatehouse-url", "", "Gatehouse's web URL as the browser opens it (default https://localhost:<web port>)")
	fs.StringVar(&o.login, "login", "", "OS login the demo role allows on Gatehouse's SSH node (default: the current user)")
	fs.StringVar(&o.gatectl, "gatectl", "", "gatectl path shown in the SSH instructions (default: next to this binary)")
	fs.StringVar(&o.startGatehouse, "start-gatehouse", "", "start this gatehouse binary on SQLite in --data-dir first, and stop it on exit")
	fs.StringVar(&o.webAddr, "web-addr", "127.0.0.1:3080", "with --start-gatehouse: Gatehouse's web listener")
	fs.StringVar(&o.authAddr, "auth-addr", "127.0.0.1:3025", "with --start-gatehouse: Gatehouse's auth (gRPC) listener")
	fs.StringVar(&o.sshAddr, "ssh-addr", "127.0.0.1:3022", "with --start-gatehouse: Gatehouse's SSH node listener")
	fs.StringVar(&o.publicAddr, "public-addr", "", "with --start-gatehouse: Gatehouse's --public-addr (default localhost:<web port> when the port is fixed)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return trace.BadParameter("%v", err)
	}
	if fs.NArg() > 0 {
		return trace.BadParameter("unexpected arguments %q (see okta-standin -h)", fs.Args())
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.login == "" {
		u, err := user.Current()
		if err != nil {
			return trace.Wrap(err, "finding the current user; pass --login")
		}
		o.login = u.Username
	}
	if o.gatectl == "" {
		o.gatectl = filepath.Join(filepath.Dir(os.Args[0]), "gatectl")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var gh *gatehouseProc
	if o.startGatehouse != "" {
		var err error
		if gh, err = startGatehouse(ctx, o, log); err != nil {
			return trace.Wrap(err)
		}
		defer gh.stop(log)
		// Gatehouse ending ends the demo.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-gh.done:
				log.Error("gatehouse exited; stopping the demo", "log", gh.logPath)
				cancel()
			case <-ctx.Done():
			}
		}()
	}

	webAddr, err := readAddr(o.dataDir, "web_addr")
	if err != nil {
		return trace.Wrap(err)
	}
	if o.gatehouseURL == "" {
		_, port, err := net.SplitHostPort(webAddr)
		if err != nil {
			return trace.BadParameter("bad web_addr %q", webAddr)
		}
		o.gatehouseURL = "https://localhost:" + port
	}
	o.gatehouseURL = strings.TrimRight(o.gatehouseURL, "/")
	sshHost, sshPort := "localhost", "3022"
	if a, err := readAddr(o.dataDir, "ssh_addr"); err == nil {
		if _, p, err := net.SplitHostPort(a); err == nil {
			sshPort = p
		}
	}

	if err := checkLoopback(o.listen); err != nil {
		return trace.Wrap(err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return trace.Wrap(err, "listening on %s (is another demo running? pass --listen)", o.listen)
	}
	keyPath := filepath.Join(o.dataDir, "ada")
	// Ada gets her certificate herself, on Gatehouse's SSH access page;
	// gatectl auth sign is the administrator's way, without the web UI.
	sshHint := fmt.Sprintf("On Gatehouse's SSH access page, %s/web/ssh (\"SSH access\" in the top bar):\n"+
		"  paste ~/.ssh/id_ed25519.pub (no key yet? ssh-keygen -t ed25519), click \"Get certificate\",\n"+
		"  download it as ~/.ssh/id_ed25519-cert.pub and run the command the page shows:\n"+
		"  ssh -i ~/.ssh/id_ed25519 -p %s %s@%s\n"+
		"Or, as the administrator, without the web UI:\n"+
		"  %s --data-dir %s auth sign --user ada@example.com --ttl 1h --out %s\n"+
		"  ssh -i %s -p %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null %s@%s",
		o.gatehouseURL, sshPort, o.login, sshHost,
		o.gatectl, o.dataDir, keyPath, keyPath, sshPort, o.login, sshHost)
	srv, err := standin.New(ctx, standin.Config{
		Gatehouse: standin.Gatehouse{URL: o.gatehouseURL, DataDir: o.dataDir},
		Listener:  ln,
		Login:     o.login,
		SSHHint:   sshHint,
		Logger:    log,
	})
	if err != nil {
		ln.Close()
		return trace.Wrap(err, "setting Gatehouse up")
	}
	if err := srv.WriteAddrFile(); err != nil {
		return trace.Wrap(err)
	}
	printInstructions(stdout, o, srv.URL, sshHint, gh)
	return trace.Wrap(srv.Serve(ctx))
}

func printInstructions(w io.Writer, o options, standinURL, sshHint string, gh *gatehouseProc) {
	var b strings.Builder
	line := strings.Repeat("─", 78)
	fmt.Fprintf(&b, "\n%s\nGatehouse demo: Gatehouse and a local Okta stand-in are running.\n%s\n", line, line)
	fmt.Fprintf(&b, "  Gatehouse web UI:   %s   (self-signed certificate: accept the warning)\n", o.gatehouseURL)
	fmt.Fprintf(&b, "  Okta stand-in:      %s\n", standinURL)
	if gh != nil {
		fmt.Fprintf(&b, "  Gatehouse's log:    %s\n", gh.logPath)
	}
	fmt.Fprintf(&b, "  Data dir:           %s   (gatectl --data-dir %s ...)\n\n", o.dataDir, o.dataDir)
	fmt.Fprintf(&b, "Already done, through Gatehouse's admin API as the operator: role %q (SSH as %s),\n", standin.DemoRole, o.login)
	fmt.Fprintf(&b, "SAML connector %q from the stand-in's metadata, okta plugin with SCIM on, a SCIM token\n", standin.ConnectorName)
	fmt.Fprintf(&b, "that the stand-in uses, and the groups %s pushed.\n\n", strings.Join(standin.DemoGroups, " and "))
	fmt.Fprintf(&b, "Try it:\n")
	fmt.Fprintf(&b, "  1. Open the Okta stand-in and click Assign on Ada Lovelace (SCIM POST /Users).\n")
	fmt.Fprintf(&b, "  2. Open %s/web/login, click \"Sign in with Okta\", pick Ada Lovelace.\n", o.gatehouseURL)
	fmt.Fprintf(&b, "     You are ada@example.com in Gatehouse, with the roles SCIM gave her.\n")
	fmt.Fprintf(&b, "  3. Get Ada an SSH certificate and SSH in (leave the session open).\n")
	for _, l := range strings.Split(sshHint, "\n") {
		fmt.Fprintf(&b, "       %s\n", l)
	}
	fmt.Fprintf(&b, "  4. On the stand-in, click Deactivate on Ada (SCIM PATCH active:false): the SSH session ends with\n")
	fmt.Fprintf(&b, "     lock targeting user \"ada@example.com\" is in force, and her web session is gone.\n")
	fmt.Fprintf(&b, "  Reactivate, unassign, groups: see docs/demo.md.\n\n")
	fmt.Fprintf(&b, "Ctrl-C stops both.\n%s\n", line)
	_, _ = io.WriteString(w, b.String())
}

// checkLoopback refuses to serve the stand-in beyond this machine: its
// picker signs anyone in as anyone, with assertions Gatehouse trusts.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return trace.BadParameter("--listen %q is not host:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return trace.BadParameter("--listen %q: the Okta stand-in serves only on loopback (127.0.0.1, ::1, localhost); it lets anyone sign in as anyone", addr)
}

func readAddr(dataDir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, name))
	if err != nil {
		return "", trace.Wrap(trace.ConvertSystemError(err), "is gatehouse running with --data-dir %s?", dataDir)
	}
	return strings.TrimSpace(string(b)), nil
}

// gatehouseProc is the Gatehouse the demo started.
type gatehouseProc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	logFile *os.File
}

// startGatehouse runs `gatehouse start` on SQLite in the data dir, its
// output in <data dir>/gatehouse.log, and waits until /readyz answers.
func startGatehouse(ctx context.Context, o options, log *slog.Logger) (*gatehouseProc, error) {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	for _, f := range addrFiles {
		// Stale files of an earlier run must not be taken for this one's.
		_ = os.Remove(filepath.Join(o.dataDir, f))
	}
	public := o.publicAddr
	if public == "" {
		if _, port, err := net.SplitHostPort(o.webAddr); err == nil && port != "0" {
			public = "localhost:" + port
		}
	}
	args := []string{"start", "--data-dir", o.dataDir, "--storage", "sqlite",
		"--web-addr", o.webAddr, "--auth-addr", o.authAddr, "--ssh-addr", o.sshAddr}
	if public != "" {
		args = append(args, "--public-addr", public)
	}
	logPath := filepath.Join(o.dataDir, "gatehouse.log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	cmd := exec.Command(o.startGatehouse, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, trace.Wrap(err, "starting %s", o.startGatehouse)
	}
	g := &gatehouseProc{cmd: cmd, done: make(chan struct{}), logPath: logPath, logFile: lf}
	go func() { _ = cmd.Wait(); close(g.done) }()
	log.Info("starting gatehouse", "bin", o.startGatehouse, "data_dir", o.dataDir, "log", logPath)

	deadline := time.Now().Add(gatehouseStartTimeout)
	for {
		select {
		case <-g.done:
			return nil, trace.ConnectionProblem(nil, "gatehouse exited during start (%v); see %s", cmd.ProcessState, logPath)
		case <-ctx.Done():
			g.stop(log)
			return nil, trace.Wrap(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if ready(o.dataDir) {
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop(log)
			return nil, trace.LimitExceeded("gatehouse was not ready within %v; see %s", gatehouseStartTimeout, logPath)
		}
	}
}

// ready says whether Gatehouse's /readyz answers 200, trusting its
// self-signed certificate from the data dir.
func ready(dataDir string) bool {
	addr, err := readAddr(dataDir, "web_addr")
	if err != nil {
		return false
	}
	if _, err := readAddr(dataDir, "ssh_addr"); err != nil {
		return false
	}
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "web.crt"))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return false
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	resp, err := c.Get("https://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop asks Gatehouse to shut down (SIGTERM) and waits; it kills it if it
// does not stop in time.
func (g *gatehouseProc) stop(log *slog.Logger) {
	defer g.logFile.Close()
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
		log.Info("gatehouse stopped")
	case <-time.After(20 * time.Second):
		log.Warn("gatehouse did not stop within 20s; killing it")
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}
