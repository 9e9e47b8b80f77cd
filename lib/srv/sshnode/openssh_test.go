package sshnode_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestOpenSSHClient drives the node with the real OpenSSH client (Debian
// package openssh-client), as users will. CI must install it; elsewhere the
// test is skipped without it.
func TestOpenSSHClient(t *testing.T) {
	t.Parallel()
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the OpenSSH client is required in CI: apt-get install -y openssh-client")
		}
		t.Skip("no OpenSSH client (apt-get install -y openssh-client)")
	}
	n := startNode(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, cert := n.issue(t, certOpts{keyID: "alice", priv: priv})

	dir := t.TempDir()
	keyPath := filepath.Join(dir, "key")
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600))
	// OpenSSH loads key-cert.pub beside the key given with -i.
	require.NoError(t, os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644))
	host, port, err := net.SplitHostPort(n.addr)
	require.NoError(t, err)

	command := func(ctx context.Context, remote string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
		cmd := exec.CommandContext(ctx, sshBin,
			"-F", "/dev/null",
			"-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes",
			"-o", "IdentitiesOnly=yes",
			"-i", keyPath,
			"-p", port,
			n.login+"@"+host,
			remote)
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd, &stdout, &stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cmd, stdout, stderr := command(ctx, "echo hi")
	require.NoError(t, cmd.Run(), "stderr: %s", stderr.String())
	require.Equal(t, "hi\n", stdout.String())

	cmd, _, stderr = command(ctx, "sleep 30")
	require.NoError(t, cmd.Start())
	ended := make(chan error, 1)
	go func() { ended <- cmd.Wait() }()
	// Wait for the second session to start before locking.
	require.Eventually(t, func() bool { return countEvents(n, sshnode.EventSessionStart) == 2 }, 10*time.Second, 5*time.Millisecond)
	start := time.Now()
	n.putLock(t, "alice-okta", &typesv1.LockTarget{User: "alice"}, lockMsg)
	select {
	case err := <-ended:
		require.Error(t, err, "a terminated session does not exit 0")
	case <-time.After(time.Second):
		t.Fatal("OpenSSH session still running 1s after the lock was written")
	}
	t.Logf("lock to OpenSSH client exit: %v", time.Since(start))
	require.Contains(t, stderr.String(), "session terminated: "+wantLockText)
	t.Logf("terminated OpenSSH client printed: %q", stderr.String())

	cmd, stdout, stderr = command(ctx, "echo hi")
	err = cmd.Run()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	require.Equal(t, 255, exitErr.ExitCode())
	require.Empty(t, stdout.String())
	require.Contains(t, stderr.String(), "administratively prohibited: "+wantLockText)
	t.Logf("refused OpenSSH client printed: %q", stderr.String())
}

func countEvents(n *node, typ string) int {
	n.audit.mu.Lock()
	defer n.audit.mu.Unlock()
	c := 0
	for _, ev := range n.audit.events {
		if ev.GetType() == typ {
			c++
		}
	}
	return c
}
