// Package credseal seals the secrets a plugin calls out with (the Okta API
// token or the private key of user sync) with AES-256-GCM under a key held in
// a file in the server's data dir.
//
// What it protects: a copy of the backend (a backup, an etcd snapshot, a
// read of the keyspace by whoever holds etcd client credentials) does not
// reveal the credential without the key file. What it does not: anyone who
// can read the key file and the backend (the server's own account, root on
// the host) can open it, and a running server holds the plaintext in memory
// while it calls Okta. Each ciphertext is bound (GCM additional data) to the
// plugin and the field it belongs to, so that one cannot be moved to another
// plugin's credentials.
package credseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/gravitational/trace"
)

// KeyFile is the name of the key file in the data dir.
const KeyFile = "credentials.key"

// keySize is an AES-256 key.
const keySize = 32

// version prefixes every ciphertext, so that the format can change.
const version byte = 1

// OktaAPIContext binds a sealed Okta API secret (user sync's credential) to
// its plugin.
func OktaAPIContext(plugin string) string { return plugin + "/okta_api" }

// Sealer seals and opens secrets with one key.
type Sealer struct {
	aead cipher.AEAD
	id   string
}

// LoadOrCreate reads the key at path, creating it (mode 0600, 32 random
// bytes) if it does not exist. A key file readable by others, or of the
// wrong size, is refused.
func LoadOrCreate(path string) (*Sealer, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, trace.Wrap(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, trace.ConvertSystemError(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return LoadOrCreate(path)
		}
		if err != nil {
			return nil, trace.ConvertSystemError(err)
		}
		if _, err := f.Write(key); err != nil {
			_ = f.Close()
			return nil, trace.ConvertSystemError(err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, trace.ConvertSystemError(err)
		}
		if err := f.Close(); err != nil {
			return nil, trace.ConvertSystemError(err)
		}
		return New(key)
	}
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, trace.AccessDenied("credentials key %s is readable by other users (mode %v); chmod 600 it", path, info.Mode().Perm())
	}
	return New(key)
}

// New returns a sealer with key (32 bytes).
func New(key []byte) (*Sealer, error) {
	if len(key) != keySize {
		return nil, trace.BadParameter("credentials key must be %d bytes, got %d", keySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	sum := sha256.Sum256(append([]byte("gatehouse credentials key id v1\x00"), key...))
	return &Sealer{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// KeyID names the key without revealing it, so that credentials sealed
// under another key are recognised as such.
func (s *Sealer) KeyID() string { return s.id }

// Seal encrypts plaintext bound to context (for example "okta/okta_api").
func (s *Sealer) Seal(plaintext []byte, context string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, trace.Wrap(err)
	}
	out := append([]byte{version}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(context)), nil
}

// Open decrypts a sealed secret bound to context. keyID is the id stored
// beside it: a mismatch says that another server's key sealed it.
func (s *Sealer) Open(sealed []byte, context, keyID string) ([]byte, error) {
	if keyID != "" && keyID != s.id {
		return nil, trace.AccessDenied("the credential was sealed with credentials key %s but this server's key is %s: copy %s from the server that stored it into this server's data dir, or set the credential again", keyID, s.id, KeyFile)
	}
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, trace.BadParameter("sealed credential is malformed")
	}
	out, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, trace.AccessDenied("the credential cannot be opened with this server's credentials key (%s): it was sealed with another key or altered", KeyFile)
	}
	return out, nil
}

// File is a Sealer over a key file: Seal creates the file on first use, so
// a server that never stores a credential never writes one; Open only reads
// it, since a new key could never open what another key sealed.
type File struct {
	path   string
	mu     sync.Mutex
	sealer *Sealer
}

// NewFile returns the sealer of the key file at path.
func NewFile(path string) *File { return &File{path: path} }

// load returns the key, reading it (creating it if create is set) until
// it has been read once.
func (f *File) load(create bool) (*Sealer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealer != nil {
		return f.sealer, nil
	}
	if !create {
		if _, err := os.Stat(f.path); errors.Is(err, fs.ErrNotExist) {
			return nil, trace.NotFound("this server has no credentials key (%s): copy %s from the server that stored the credential into this server's data dir (every server of a cluster needs the same key)", f.path, KeyFile)
		}
	}
	s, err := LoadOrCreate(f.path)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	f.sealer = s
	return s, nil
}

// Seal seals with the file's key, creating the file if needed.
func (f *File) Seal(plaintext []byte, context string) ([]byte, error) {
	s, err := f.load(true)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return s.Seal(plaintext, context)
}

// Open opens with the file's key; trace.NotFound if there is no key file.
func (f *File) Open(sealed []byte, context, keyID string) ([]byte, error) {
	s, err := f.load(false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return s.Open(sealed, context, keyID)
}

// KeyID names the file's key, creating it if needed (it is asked for beside
// Seal); empty if it cannot be read or written, and Seal then fails.
func (f *File) KeyID() string {
	s, err := f.load(true)
	if err != nil {
		return ""
	}
	return s.KeyID()
}
