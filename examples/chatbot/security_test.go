package main

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// The chart runs the pods with runAsNonRoot: the kubelet starts a container
// only if it can tell from the image that its user is not root, which takes
// a numeric USER (a name would need the image's /etc/passwd, which the
// kubelet does not read).
func TestImageRunsAsANumericNonRootUser(t *testing.T) {
	f, err := os.Open("Dockerfile")
	assert.NilError(t, err)
	defer f.Close()
	var user string
	stages := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 0:
		case strings.EqualFold(fields[0], "FROM"):
			stages++
			user = "" // USER does not carry over between stages
		case strings.EqualFold(fields[0], "USER") && len(fields) == 2:
			user = fields[1]
		}
	}
	assert.NilError(t, sc.Err())
	assert.Assert(t, stages > 0)
	m := regexp.MustCompile(`^([0-9]+)(:[0-9]+)?$`).FindStringSubmatch(user)
	assert.Assert(t, m != nil, "the final stage's USER is %q: set a numeric uid:gid, e.g. USER 65532:65532", user)
	uid, err := strconv.Atoi(m[1])
	assert.NilError(t, err)
	assert.Assert(t, uid != 0, "the final stage runs as root (USER %s)", user)
}

// The chart mounts the root filesystem read-only with a writable /tmp: the
// only file the chatbot writes is its drain marker, and it is under /tmp
// unless DRAIN_MARKER_PATH says otherwise. A new write anywhere in the code
// fails this test until it is looked at (and kept under /tmp).
func TestWritesOnlyUnderTmp(t *testing.T) {
	assert.Assert(t, strings.HasPrefix(server.DefaultDrainMarkerPath, "/tmp/"), server.DefaultDrainMarkerPath)
	cfg, err := server.ConfigFromEnv(func(string) string { return "" })
	assert.NilError(t, err)
	assert.Equal(t, cfg.DrainMarkerPath, server.DefaultDrainMarkerPath)

	writes := map[string]bool{"Create": true, "CreateTemp": true, "WriteFile": true, "OpenFile": true, "Mkdir": true,
		"MkdirAll": true, "MkdirTemp": true, "Rename": true, "Link": true, "Symlink": true, "Chmod": true, "Chtimes": true, "Truncate": true}
	var found []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		var fn string
		ast.Inspect(file, func(n ast.Node) bool {
			if decl, ok := n.(*ast.FuncDecl); ok {
				fn = decl.Name.Name
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "os" && writes[sel.Sel.Name] {
					found = append(found, filepath.ToSlash(path)+": "+fn+": os."+sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	assert.NilError(t, err)
	assert.DeepEqual(t, found, []string{"server/server.go: touchMarker: os.OpenFile"})
}
