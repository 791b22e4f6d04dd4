package imapstore

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyImapstoreSpeaksIMAP: no non-test package outside imapstore, the
// demo and the test bed (with its synthetic site for bench/scale) imports
// go-imap, so that IMAP is reached through
// one package; and config does not depend on imapstore.
func TestOnlyImapstoreSpeaksIMAP(t *testing.T) {
	root := filepath.Join("..", "..")
	allowed := map[string]bool{"internal/imapstore": true, "internal/demo": true, "internal/testbed": true, "internal/testbed/site": true}
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/emersion/go-imap/") && !allowed[rel] {
				t.Errorf("%s imports %s", path, p)
			}
			if rel == "internal/config" && p == "github.com/fbpub/fbpub/internal/imapstore" {
				t.Errorf("%s imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Errorf("only %d files checked", checked)
	}
}
