package sshnode

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/atomicfile"
)

// ParseAuthorizedKeys parses CA public keys in authorized_keys format, one a
// line (what lib/auth's UserCASSHPublicKey and CertAuthority.ssh_public_key
// hold); blank lines and comments are skipped.
func ParseAuthorizedKeys(data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		pub, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return nil, trace.BadParameter("parsing CA public keys: %v", err)
		}
		keys = append(keys, pub)
		rest = bytes.TrimSpace(r)
	}
	if len(keys) == 0 {
		return nil, trace.BadParameter("no CA public key found")
	}
	return keys, nil
}

// LoadOrCreateHostKey reads the node's ed25519 host key from path (OpenSSH
// private key format), creating it with mode 0600 if it does not exist, so
// that clients see the same host key across restarts.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, trace.BadParameter("host key %s: %v", path, err)
		}
		return signer, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, trace.ConvertSystemError(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "gatehouse host key")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	// Atomic and durable, so a crash never leaves a truncated key behind.
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, trace.Wrap(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	return signer, trace.Wrap(err)
}
