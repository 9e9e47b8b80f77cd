package services

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoKeysOutsideServices keeps the rule that only lib/services (and the
// backend itself) builds backend keys: no other non-test file of the module
// calls backend.NewKey or one of the services' key functions. Other
// packages go through Plan, the services and PrefixKey.
func TestNoKeysOutsideServices(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	forbidden := map[string]map[string]bool{
		"github.com/gatehouse/gatehouse/lib/backend":  {"NewKey": true},
		"github.com/gatehouse/gatehouse/lib/services": {"UserKey": true, "LockKey": true, "PluginKey": true, "EventKey": true},
	}
	var found []string
	checked := 0
	for _, dir := range []string{"lib", "cmd", "plugins"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if rel == "lib/services" || rel == "lib/backend" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
				return nil
			}
			checked++
			found = append(found, keyCalls(t, path, rel, forbidden)...)
			return nil
		})
		require.NoError(t, err)
	}
	require.Positive(t, checked)
	require.Empty(t, found, "backend keys built outside lib/services; use services.Plan, a service or services.PrefixKey")
}

// keyCalls lists the uses in file path of the forbidden functions.
func keyCalls(t *testing.T, path, rel string, forbidden map[string]map[string]bool) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	names := map[string]map[string]bool{}
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		require.NoError(t, err)
		fns, ok := forbidden[p]
		if !ok {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = fns
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && names[id.Name][sel.Sel.Name] {
			out = append(out, rel+":"+strconv.Itoa(fset.Position(sel.Pos()).Line)+": "+id.Name+"."+sel.Sel.Name)
		}
		return true
	})
	return out
}
