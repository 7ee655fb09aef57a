package sequences

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits on content files, so hostile or broken input is rejected quickly.
const (
	// MaxFileSize is the largest content file accepted (1 MiB).
	MaxFileSize = 1 << 20
	// maxDepth is the deepest nesting of mappings and lists accepted.
	maxDepth = 24
	// maxNodes is the most YAML nodes one file may hold.
	maxNodes = 50_000
)

// yfile is one YAML file being decoded: its path for problems, and the
// problem collector.
type yfile struct {
	path string
	ps   *problems
	bad  bool // a problem was reported in this file
	// lines of the source, for positions inside multi-line scalars.
	lines []string
}

func (f *yfile) errAt(line, col int, format string, args ...any) {
	f.bad = true
	f.ps.add(f.path, line, col, format, args...)
}

func (f *yfile) errf(n ast.Node, format string, args ...any) {
	line, col := pos(n)
	f.errAt(line, col, format, args...)
}

// pos is the line and column where a node starts, as a person reads it.
func pos(n ast.Node) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 {
			return pos(v.Values[0].Key)
		}
		if v.Start != nil && v.Start.Position != nil {
			return v.Start.Position.Line, v.Start.Position.Column
		}
	case *ast.MappingValueNode:
		return pos(v.Key)
	case *ast.SequenceNode:
		if v.Start != nil && v.Start.Position != nil {
			return v.Start.Position.Line, v.Start.Position.Column
		}
	case *ast.DocumentNode:
		return pos(v.Body)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// parseYAML parses one content file into its root node, enforcing the size,
// depth and node-count limits and rejecting anchors, aliases, merge keys and
// tags. It returns nil (after reporting) when the file cannot be used; an
// empty file yields nil without a problem only when allowEmpty.
func (f *yfile) parse(src []byte) ast.Node {
	if len(src) > MaxFileSize {
		f.errAt(0, 0, "file is %d bytes; content files may be at most %d bytes (1 MiB)", len(src), MaxFileSize)
		return nil
	}
	if line, col, ok := flowTooDeep(src); ok {
		f.errAt(line, col, "nesting deeper than %d levels", maxDepth)
		return nil
	}
	f.lines = strings.Split(string(src), "\n")
	file, err := parseBytes(src)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			p := ye.GetToken().Position
			f.errAt(p.Line, p.Column, "YAML syntax error: %s", yamlMessage(ye.GetMessage(), ye.GetToken()))
		} else {
			f.errAt(0, 0, "YAML syntax error: %v", err)
		}
		return nil
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		f.errAt(1, 1, "file is empty")
		return nil
	}
	if len(docs) > 1 {
		f.errf(docs[1], "one YAML document per file (found a second document)")
		return nil
	}
	body := docs[0].Body
	count := 0
	if !f.checkTree(body, 0, &count) {
		return nil
	}
	return body
}

// parseBytes runs the YAML parser, converting a panic inside it (hostile
// input) into an error.
func parseBytes(src []byte) (file *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return parser.ParseBytes(src, 0)
}

func yamlMessage(msg string, tk *token.Token) string {
	if tk != nil && strings.HasPrefix(strings.TrimSpace(tk.Value), "*") {
		return msg + ` (a value starting with "*" must be quoted, e.g. "* 9-17 * * MON-FRI")`
	}
	return msg
}

// flowTooDeep finds flow collections ([ and {) nested deeper than maxDepth
// before the parser sees them, so a file of a million "[" costs nothing.
// Quoted strings and comments are skipped approximately; a false positive
// needs more than maxDepth brackets inside a string, which no content has.
func flowTooDeep(src []byte) (line, col int, deep bool) {
	depth, line, col := 0, 1, 0
	var quote byte
	comment := false
	for _, c := range src {
		col++
		if c == '\n' {
			// Quotes may span lines; comments end here.
			line, col, comment = line+1, 0, false
			continue
		}
		switch {
		case comment:
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '#':
			comment = true
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
			if depth > maxDepth {
				return line, col, true
			}
		case c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, 0, false
}

// checkTree rejects anchors, aliases, merge keys, tags, excessive depth and
// excessive size. It reports at most one problem per kind of node so a
// hostile file yields a short list.
func (f *yfile) checkTree(n ast.Node, depth int, count *int) bool {
	if n == nil {
		return true
	}
	*count++
	if *count > maxNodes {
		f.errf(n, "file has more than %d YAML nodes", maxNodes)
		return false
	}
	if depth > maxDepth {
		f.errf(n, "nesting deeper than %d levels", maxDepth)
		return false
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		f.errf(n, "YAML anchors (&name) are not allowed in content files; repeat the value instead")
		return false
	case *ast.AliasNode:
		f.errf(n, "YAML aliases (*name) are not allowed in content files; quote values that start with \"*\"")
		return false
	case *ast.MergeKeyNode:
		f.errf(n, "YAML merge keys (<<) are not allowed in content files")
		return false
	case *ast.TagNode:
		f.errf(n, "YAML tags (!tag) are not allowed in content files")
		return false
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if !f.checkTree(mv, depth+1, count) {
				return false
			}
		}
	case *ast.MappingValueNode:
		if !f.checkTree(v.Key, depth, count) {
			return false
		}
		return f.checkTree(v.Value, depth, count)
	case *ast.SequenceNode:
		for _, x := range v.Values {
			if !f.checkTree(x, depth+1, count) {
				return false
			}
		}
	case *ast.MappingKeyNode:
		f.errf(n, "complex mapping keys (?) are not allowed")
		return false
	}
	return true
}

// kind names a node's type for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "nothing (null)"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	default:
		return "an unsupported value"
	}
}

// mapv is a decoded YAML mapping with its keys checked.
type mapv struct {
	f    *yfile
	n    ast.Node
	vals map[string]ast.Node
	keys map[string]ast.Node
	// order is the keys in file order.
	order []string
}

// mapping decodes n as a mapping whose keys must be among allowed
// (allowed == nil accepts any key). Unknown keys are reported with a
// did-you-mean. It returns nil (after reporting) when n is not a mapping.
func (f *yfile) mapping(n ast.Node, what string, allowed []string) *mapv {
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	default:
		f.errf(n, "%s must be a mapping, got %s", what, kind(n))
		return nil
	}
	m := &mapv{f: f, n: n, vals: map[string]ast.Node{}, keys: map[string]ast.Node{}}
	for _, mv := range values {
		k, ok := scalarString(mv.Key)
		if !ok {
			f.errf(mv.Key, "%s: keys must be strings, got %s", what, kind(mv.Key))
			continue
		}
		if allowed != nil && !slices.Contains(allowed, k) {
			f.errf(mv.Key, "unknown key %q in %s%s", short(k), what, suggest(k, allowed))
			continue
		}
		if _, dup := m.vals[k]; dup {
			f.errf(mv.Key, "duplicate key %q in %s", k, what)
			continue
		}
		m.vals[k] = mv.Value
		m.keys[k] = mv.Key
		m.order = append(m.order, k)
	}
	return m
}

// get returns the value of key, or nil when absent.
func (m *mapv) get(key string) ast.Node {
	if m == nil {
		return nil
	}
	return m.vals[key]
}

func (m *mapv) has(key string) bool {
	if m == nil {
		return false
	}
	_, ok := m.vals[key]
	return ok
}

// require reports each missing key and returns whether all are present.
func (m *mapv) require(what string, keys ...string) bool {
	if m == nil {
		return false
	}
	ok := true
	for _, k := range keys {
		if !m.has(k) {
			m.f.errf(m.n, "%s is missing required key %q", what, k)
			ok = false
		}
	}
	return ok
}

func scalarString(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	}
	return "", false
}

// str decodes a string. Empty strings are reported unless allowEmpty.
func (f *yfile) str(n ast.Node, what string) (string, bool) {
	s, ok := scalarString(n)
	if !ok {
		f.errf(n, "%s must be a string, got %s", what, kind(n))
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		f.errf(n, "%s must not be empty", what)
		return "", false
	}
	return s, true
}

// number decodes an integer or floating-point number.
func (f *yfile) number(n ast.Node, what string) (float64, bool) {
	switch v := n.(type) {
	case *ast.IntegerNode:
		switch x := v.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		case int:
			return float64(x), true
		}
		if x, err := strconv.ParseFloat(v.GetToken().Value, 64); err == nil {
			return x, true
		}
	case *ast.FloatNode:
		if !math.IsInf(v.Value, 0) && !math.IsNaN(v.Value) {
			return v.Value, true
		}
	}
	f.errf(n, "%s must be a number, got %s", what, kind(n))
	return 0, false
}

// integer decodes a whole number within [lo, hi].
func (f *yfile) integer(n ast.Node, what string, lo, hi int) (int, bool) {
	v, ok := n.(*ast.IntegerNode)
	if !ok {
		f.errf(n, "%s must be a whole number, got %s", what, kind(n))
		return 0, false
	}
	var x int64
	switch iv := v.Value.(type) {
	case int64:
		x = iv
	case uint64:
		x = int64(min(iv, 1<<62))
	case int:
		x = int64(iv)
	default:
		x = int64(hi) + 1
	}
	if x < int64(lo) || x > int64(hi) {
		f.errf(n, "%s must be between %d and %d", what, lo, hi)
		return 0, false
	}
	return int(x), true
}

func (f *yfile) boolean(n ast.Node, what string) (bool, bool) {
	v, ok := n.(*ast.BoolNode)
	if !ok {
		f.errf(n, "%s must be true or false, got %s", what, kind(n))
		return false, false
	}
	return v.Value, true
}

// list decodes a list. A single scalar is accepted as a one-item list when
// scalarOK, so `on: trial.started` and `on: [trial.started]` both work.
func (f *yfile) list(n ast.Node, what string, scalarOK bool) ([]ast.Node, bool) {
	switch v := n.(type) {
	case *ast.SequenceNode:
		return v.Values, true
	case *ast.StringNode, *ast.LiteralNode:
		if scalarOK {
			return []ast.Node{n}, true
		}
	}
	if scalarOK {
		f.errf(n, "%s must be a string or a list of strings, got %s", what, kind(n))
	} else {
		f.errf(n, "%s must be a list, got %s", what, kind(n))
	}
	return nil, false
}

// strings decodes a string or a list of strings, returning the values with
// their nodes.
func (f *yfile) strs(n ast.Node, what string) ([]string, []ast.Node) {
	items, ok := f.list(n, what, true)
	if !ok {
		return nil, nil
	}
	var out []string
	var nodes []ast.Node
	for _, it := range items {
		if s, ok := f.str(it, what); ok {
			out = append(out, s)
			nodes = append(nodes, it)
		}
	}
	return out, nodes
}

// short truncates s for messages.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	r := []rune(s)
	if len(r) <= 64 {
		return s
	}
	return string(r[:60]) + "…"
}
