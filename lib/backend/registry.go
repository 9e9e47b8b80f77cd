package backend

import (
	"context"
	"sort"
	"sync"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
)

// Params configures a backend chosen by name. Each implementation documents
// the fields it reads; unknown settings are refused by the implementation.
type Params struct {
	// Path is a file or directory for embedded engines (lite).
	Path string
	// Settings holds engine-specific options (for example etcd endpoints).
	Settings map[string]any
	// Clock decides expiry; nil means the real clock.
	Clock clockwork.Clock
}

// Factory opens a backend from params.
type Factory func(ctx context.Context, p Params) (Backend, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a backend available under name. Implementations call it from
// an init function; registering one name twice is a programming error.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backend: " + name + " registered twice")
	}
	registry[name] = f
}

// New opens the backend registered under name.
func New(ctx context.Context, name string, p Params) (Backend, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, trace.BadParameter("unknown storage backend %q (known: %v)", name, Names())
	}
	b, err := f(ctx, p)
	return b, trace.Wrap(err)
}

// Names lists the registered backends in order.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
