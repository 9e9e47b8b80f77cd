package sshnode

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/services"
)

// Limits on what a client may ask of a session.
const (
	maxEnvVars    = 128
	maxEnvSize    = 8192
	maxCommandLen = 64 * 1024
)

// session is one "session" channel: at most one exec or shell.
type session struct {
	c        *conn
	ch       ssh.Channel
	id       string
	log      *slog.Logger
	finished chan struct{}
	// told is closed once a terminated session's client has been sent the
	// reason, which must precede the exit status and channel close.
	told chan struct{}

	mu         sync.Mutex
	env        []string
	term       string
	ptmx       *os.File
	tty        *os.File
	cmd        *exec.Cmd
	started    bool
	done       bool
	terminated bool
}

func newSession(c *conn, ch ssh.Channel) *session {
	id := uuid.NewString()
	return &session{
		c:        c,
		ch:       ch,
		id:       id,
		log:      c.log.With("session_id", id),
		finished: make(chan struct{}),
		told:     make(chan struct{}),
	}
}

// serve handles the channel's requests until the client closes it.
func (s *session) serve(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "env":
			s.reply(req, s.setEnv(req.Payload))
		case "pty-req":
			s.reply(req, s.allocatePTY(req.Payload))
		case "window-change":
			s.windowChange(req.Payload)
			s.reply(req, nil)
		case "exec", "shell":
			launch, err := s.start(req)
			s.reply(req, err)
			if err != nil {
				s.log.Info("Cannot start session.", "error", err)
				_, _ = s.ch.Stderr().Write([]byte(trace.UserMessage(err) + "\r\n"))
				continue
			}
			// Output and exit status only after the reply, which clients
			// expect first.
			launch()
		case "signal":
			s.handleSignal(req.Payload)
			s.reply(req, nil)
		default:
			s.reply(req, trace.NotImplemented("%s requests are not supported", req.Type))
		}
	}
	// The client closed the channel: hang up its processes.
	s.signal(syscall.SIGHUP)
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		s.closePTY()
		s.ch.Close()
	}
}

func (s *session) reply(req *ssh.Request, err error) {
	if req.WantReply {
		_ = req.Reply(err == nil, nil)
	}
}

func (s *session) setEnv(payload []byte) error {
	var kv struct{ Name, Value string }
	if err := ssh.Unmarshal(payload, &kv); err != nil {
		return trace.BadParameter("malformed env request")
	}
	if kv.Name == "" || strings.ContainsAny(kv.Name, "=\x00") || strings.ContainsRune(kv.Value, 0) ||
		len(kv.Name)+len(kv.Value) > maxEnvSize {
		return trace.BadParameter("invalid environment variable")
	}
	if !envAccepted(kv.Name) {
		return trace.AccessDenied("environment variable %q is not accepted", kv.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || len(s.env) >= maxEnvVars {
		return trace.LimitExceeded("too many environment variables")
	}
	s.env = append(s.env, kv.Name+"="+kv.Value)
	return nil
}

// envAccepted says which client variables reach the session: the locale
// ones, as OpenSSH's AcceptEnv does by default. Anything else (LD_PRELOAD,
// BASH_ENV, PATH, ...) could make the login's own shell or a setuid helper
// run code the user chose, which a restricted shell such as nologin must
// not allow.
func envAccepted(name string) bool {
	return name == "LANG" || strings.HasPrefix(name, "LC_")
}

func (s *session) allocatePTY(payload []byte) error {
	var req struct {
		Term                  string
		Columns, Rows         uint32
		WidthPixel, HeightPix uint32
		Modes                 string
	}
	if err := ssh.Unmarshal(payload, &req); err != nil {
		return trace.BadParameter("malformed pty request")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.ptmx != nil {
		return trace.BadParameter("pty already allocated")
	}
	ptmx, tty, err := openPTY()
	if err != nil {
		return trace.Wrap(err)
	}
	_ = setWinsize(ptmx, req.Columns, req.Rows)
	s.ptmx, s.tty = ptmx, tty
	if !strings.ContainsRune(req.Term, 0) && len(req.Term) < 256 {
		s.term = req.Term
	}
	return nil
}

func (s *session) windowChange(payload []byte) {
	var req struct {
		Columns, Rows         uint32
		WidthPixel, HeightPix uint32
	}
	if err := ssh.Unmarshal(payload, &req); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptmx != nil {
		_ = setWinsize(s.ptmx, req.Columns, req.Rows)
	}
}

var signalsByName = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for n, v := range signalsByName {
		if v == sig {
			return n
		}
	}
	return "KILL"
}

func (s *session) handleSignal(payload []byte) {
	var req struct{ Signal string }
	if err := ssh.Unmarshal(payload, &req); err != nil {
		return
	}
	if sig, ok := signalsByName[req.Signal]; ok {
		s.signal(sig)
	}
}

// signal sends sig to the session's process group (the process runs in its
// own session, so its children are reached too).
func (s *session) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil || s.done {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
}

// start launches the exec or shell; the returned func starts the I/O and
// the wait, and must run after the request is answered.
func (s *session) start(req *ssh.Request) (func(), error) {
	var command string
	isExec := req.Type == "exec"
	if isExec {
		var p struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &p); err != nil || len(p.Command) > maxCommandLen {
			return nil, trace.BadParameter("malformed exec request")
		}
		command = p.Command
	}
	// Reserve the session under the lock, but fork outside it: the lock
	// watcher's kill path takes s.mu and must not wait for a fork.
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return nil, trace.BadParameter("session already started")
	}
	if s.terminated {
		s.mu.Unlock()
		return nil, trace.AccessDenied("session terminated")
	}
	s.started = true
	env, term, tty := slices.Clone(s.env), s.term, s.tty
	s.mu.Unlock()
	cmd, stdin, stdout, stderr, err := s.launchProcess(isExec, command, env, term, tty)
	if err != nil {
		s.mu.Lock()
		s.started = false
		s.mu.Unlock()
		return nil, trace.Wrap(err)
	}
	s.mu.Lock()
	s.cmd = cmd
	killNow, ptmx := s.terminated, s.ptmx
	if s.tty != nil {
		// The child has its own copy; ours would keep the pty open forever.
		s.tty.Close()
		s.tty = nil
	}
	s.mu.Unlock()
	if killNow {
		// A lock arrived while the process was being started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	kind := "shell"
	if isExec {
		kind = "exec"
	}
	s.log.Info("Session started.", "kind", kind, "pid", cmd.Process.Pid)
	return func() {
		go s.wait(cmd, ptmx, stdin, stdout, stderr)
		// Not under s.mu: the lock watcher's kill path takes it, and an
		// audit write may be slow.
		ev := s.c.event(EventSessionStart, services.OutcomeSuccess, "")
		ev.Fields["session_id"] = s.id
		ev.Fields["kind"] = kind
		s.c.s.emit(ev)
	}, nil
}

// launchProcess starts the session's process, on tty if there is one, or
// on pipes.
func (s *session) launchProcess(isExec bool, command string, env []string, term string, tty *os.File) (cmd *exec.Cmd, stdin io.WriteCloser, stdout, stderr io.ReadCloser, err error) {
	cmd, err = s.c.buildCmd(isExec, command, env, term)
	if err != nil {
		return nil, nil, nil, nil, trace.Wrap(err)
	}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
		if cmd.SysProcAttr.Credential != nil {
			_ = os.Chown(tty.Name(), int(cmd.SysProcAttr.Credential.Uid), -1)
		}
	} else {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, nil, nil, nil, trace.Wrap(err)
		}
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, nil, nil, nil, trace.Wrap(err)
		}
		if stderr, err = cmd.StderrPipe(); err != nil {
			return nil, nil, nil, nil, trace.Wrap(err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, nil, trace.Wrap(err, "cannot start the session")
	}
	return cmd, stdin, stdout, stderr, nil
}

// wait plumbs I/O until the process ends, then reports its exit and closes
// the channel.
func (s *session) wait(cmd *exec.Cmd, ptmx *os.File, stdin io.WriteCloser, stdout, stderr io.ReadCloser) {
	defer close(s.finished)
	var out sync.WaitGroup
	var waitErr error
	if ptmx != nil {
		go func() { _, _ = io.Copy(ptmx, s.ch) }()
		out.Add(1)
		go func() {
			defer out.Done()
			_, _ = io.Copy(s.ch, ptmx)
		}()
		waitErr = cmd.Wait()
		// The output copy ends when every holder of the tty is gone; do not
		// wait forever for a background process that keeps it.
		copied := make(chan struct{})
		go func() { out.Wait(); close(copied) }()
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		s.closePTY()
	} else {
		go func() {
			_, _ = io.Copy(stdin, s.ch)
			stdin.Close()
		}()
		out.Add(2)
		go func() {
			defer out.Done()
			_, _ = io.Copy(s.ch, stdout)
		}()
		go func() {
			defer out.Done()
			_, _ = io.Copy(s.ch.Stderr(), stderr)
		}()
		// Reads must complete before Wait closes the pipes.
		out.Wait()
		waitErr = cmd.Wait()
	}
	s.mu.Lock()
	s.done = true
	terminated := s.terminated
	s.mu.Unlock()

	code, sig := exitInfo(cmd, waitErr)
	// A terminated session's exit and close are sent by terminate, right
	// after the reason, without waiting for the process to be reaped. If the
	// client closed the channel first, terminate may never run for it.
	reported := false
	if terminated {
		select {
		case <-s.told:
			reported = true
		case <-time.After(s.c.s.cfg.TerminateGrace):
		}
	}
	if !reported {
		if sig != 0 {
			_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: signalName(sig)}))
		} else {
			_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
		}
		_ = s.ch.CloseWrite()
		s.ch.Close()
	}
	ev := s.c.event(EventSessionEnd, services.OutcomeSuccess, "")
	ev.Fields["session_id"] = s.id
	ev.Fields["exit_code"] = strconv.Itoa(code)
	if sig != 0 {
		ev.Fields["signal"] = signalName(sig)
	}
	s.c.s.emit(ev)
	s.log.Info("Session ended.", "exit_code", code)
}

func exitInfo(cmd *exec.Cmd, err error) (code int, sig syscall.Signal) {
	if cmd.ProcessState != nil {
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), ws.Signal()
		}
		return cmd.ProcessState.ExitCode(), 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), 0
	}
	return 255, 0
}

func (s *session) closePTY() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptmx != nil {
		s.ptmx.Close()
		s.ptmx = nil
	}
	if s.tty != nil {
		s.tty.Close()
		s.tty = nil
	}
}

// kill marks the session terminated, so that it starts nothing more, and
// kills its process group. It only makes syscalls: the lock watcher calls it
// synchronously.
func (s *session) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.terminated = true
	if s.cmd != nil && s.cmd.Process != nil && !s.done {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// terminate kills the session's process group (if kill has not already),
// writes msg to the client's stderr, reports the exit as SIGKILL and closes
// the channel, without waiting for the processes to be reaped. The caller
// must make sure the connection is closed eventually (see conn.terminate).
func (s *session) terminate(msg string) {
	s.kill()
	// This write blocks only if the client stopped reading and its window is
	// full; the caller closes the connection after a grace period, which
	// unblocks it.
	_, _ = s.ch.Stderr().Write([]byte("\r\n" + msg + "\r\n"))
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if started {
		_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: "KILL", Error: msg}))
	}
	close(s.told)
	_ = s.ch.CloseWrite()
	s.ch.Close()
}

// buildCmd prepares the process for a session as the connection's OS login.
func (c *conn) buildCmd(isExec bool, command string, clientEnv []string, term string) (*exec.Cmd, error) {
	u, err := user.Lookup(c.login)
	if err != nil {
		return nil, trace.NotFound("OS login %q does not exist on this node", c.login)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, trace.BadParameter("OS login %q has a non-numeric uid or gid", c.login)
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	if os.Geteuid() == 0 {
		var groups []uint32
		if ids, err := u.GroupIds(); err == nil {
			for _, g := range ids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	} else if uid != uint64(os.Getuid()) {
		return nil, trace.AccessDenied("this node runs unprivileged and can only run sessions as its own user")
	}
	shell := loginShell(c.login)
	var cmd *exec.Cmd
	if isExec {
		cmd = exec.Command(shell, "-c", command)
	} else {
		cmd = exec.Command(shell)
		// A leading dash makes it a login shell.
		cmd.Args = []string{"-" + filepath.Base(shell)}
	}
	cmd.SysProcAttr = attr
	cmd.Dir = "/"
	if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
		cmd.Dir = u.HomeDir
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	if uid == 0 {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	// The client's variables first: later entries win, so these cannot be
	// overridden.
	env := append([]string{}, clientEnv...)
	env = append(env,
		"HOME="+u.HomeDir,
		"USER="+c.login,
		"LOGNAME="+c.login,
		"SHELL="+shell,
		"PATH="+path,
		"GATEHOUSE_USER="+c.user,
		"SSH_CONNECTION="+sshConnection(c),
	)
	if term != "" {
		env = append(env, "TERM="+term)
	}
	cmd.Env = env
	return cmd, nil
}

func sshConnection(c *conn) string {
	rh, rp, _ := net.SplitHostPort(c.sconn.RemoteAddr().String())
	lh, lp, _ := net.SplitHostPort(c.sconn.LocalAddr().String())
	return strings.Join([]string{rh, rp, lh, lp}, " ")
}

// loginShell reads the login's shell from /etc/passwd, falling back to
// /bin/sh (also for accounts whose shell does not exist).
func loginShell(login string) string {
	const fallback = "/bin/sh"
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return fallback
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == login && fields[6] != "" {
			if _, err := os.Stat(fields[6]); err == nil {
				return fields[6]
			}
			return fallback
		}
	}
	return fallback
}
