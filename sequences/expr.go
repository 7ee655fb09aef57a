package sequences

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/nurture-oss/nurture/engine"
)

// maxExprLen bounds the source of one condition.
const maxExprLen = 2000

// exprScope says where a condition is evaluated, and so what it may use.
type exprScope int

const (
	// scopeLead: enrollment triggers and scoring rules. traits, email,
	// score, event, now.
	scopeLead exprScope = iota
	// scopeEnrollment: branch steps, exit goals and wait_for matches; adds
	// opened("step"), clicked("step") and sent("step").
	scopeEnrollment
)

// stepFuncs are the helpers available in scopeEnrollment.
var stepFuncs = []string{"opened", "clicked", "sent"}

// exprEnv is the typed environment conditions are checked against.
func exprEnv(fields map[string]Field, scope exprScope) types.Map {
	traits := types.Map{}
	for name, fd := range fields {
		traits[name] = fieldExprType(fd.Type)
	}
	env := types.Map{
		"traits": traits,
		"email":  types.String,
		"score":  types.Float64,
		"now":    types.TypeOf(time.Time{}),
		"event": types.Map{
			"id":         types.String,
			"type":       types.String,
			"machine":    types.Bool,
			"time":       types.TypeOf(time.Time{}),
			"properties": types.Map{types.Extra: types.Any},
		},
	}
	if scope == scopeEnrollment {
		for _, name := range stepFuncs {
			env[stepVar(name)] = types.Array(types.String)
		}
	}
	return env
}

// stepVar is the hidden variable opened("x") and friends are rewritten to:
// opened("x") compiles to "x" in __opened, the enrollment's Opened list,
// so evaluating it allocates nothing.
func stepVar(fn string) string {
	switch fn {
	case "opened":
		return "__opened"
	case "clicked":
		return "__clicked"
	case "sent":
		return "__sent"
	}
	return "__" + fn
}

func fieldExprType(t FieldType) types.Type {
	switch t {
	case FieldNumber:
		return types.Float64
	case FieldBool:
		return types.Bool
	case FieldList:
		return types.Array(types.String)
	case FieldString:
		return types.String
	default:
		return types.Any // a field whose declaration has a problem
	}
}

// Condition is a compiled, type-checked expr-lang condition. It implements
// engine.Condition.
type Condition struct {
	Source string
	prog   *vm.Program
	scope  exprScope
	// traits are the declared fields the condition reads (all of them when
	// it uses traits as a whole).
	traits []Field
	// uses records which top-level names the condition reads, so Eval
	// builds only those.
	uses  map[string]bool
	calls []stepCall
}

var _ engine.Condition = (*Condition)(nil)

// CompileCondition compiles src against the declared fields. withSteps
// enables opened/clicked/sent (conditions evaluated inside an enrollment).
// It returns the expr-lang error (a *file.Error with a position) on failure.
func CompileCondition(src string, fields map[string]Field, withSteps bool) (*Condition, error) {
	scope := scopeLead
	if withSteps {
		scope = scopeEnrollment
	}
	return compileCondition(src, fields, scope)
}

func compileCondition(src string, fields map[string]Field, scope exprScope) (c *Condition, err error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("condition is longer than %d characters", maxExprLen)
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("cannot compile condition: %v", r)
		}
	}()
	opts := []expr.Option{
		expr.Env(exprEnv(fields, scope)),
		expr.AsBool(),
		expr.DisableBuiltin("now"), // conditions never read the clock: use `now`
		expr.MaxNodes(500),
	}
	sp := &stepPatcher{}
	if scope == scopeEnrollment {
		opts = append(opts, expr.Patch(sp))
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	for _, call := range sp.calls {
		if call.step == "" {
			fe := &file.Error{Location: call.loc, Message: fmt.Sprintf("%s() takes a step id in quotes, e.g. %s(\"welcome\")", call.fn, call.fn)}
			return nil, fe.Bind(file.NewSource(src))
		}
	}
	c = &Condition{Source: src, prog: prog, scope: scope, calls: sp.calls, uses: map[string]bool{}}
	var u usesVisitor
	root := prog.Node()
	exprast.Walk(&root, &u)
	for name := range u.idents {
		c.uses[name] = true
	}
	wanted := u.traits
	if u.idents["traits"] > u.traitMembers {
		wanted = nil // traits used as a whole: provide every field
		for name := range fields {
			wanted = append(wanted, name)
		}
	}
	slices.Sort(wanted)
	for _, name := range slices.Compact(wanted) {
		if fd, ok := fields[name]; ok {
			c.traits = append(c.traits, fd)
		}
	}
	return c, nil
}

// stepPatcher rewrites opened("x") to "x" in __opened (likewise clicked
// and sent) and records the calls for validation.
type stepPatcher struct{ calls []stepCall }

func (p *stepPatcher) Visit(n *exprast.Node) {
	call, ok := (*n).(*exprast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*exprast.IdentifierNode)
	if !ok || !slices.Contains(stepFuncs, id.Value) {
		return
	}
	sc := stepCall{fn: id.Value, loc: call.Location()}
	var arg *exprast.StringNode
	if len(call.Arguments) == 1 {
		arg, _ = call.Arguments[0].(*exprast.StringNode)
	}
	if arg != nil {
		sc.step, sc.loc = arg.Value, arg.Location()
	}
	p.calls = append(p.calls, sc)
	if arg == nil {
		return // reported after compilation
	}
	repl := &exprast.BinaryNode{Operator: "in", Left: &exprast.StringNode{Value: arg.Value}, Right: &exprast.IdentifierNode{Value: stepVar(id.Value)}}
	repl.SetLocation(call.Location())
	exprast.Patch(n, repl)
}

type stepCall struct {
	fn, step string
	loc      file.Location
}

// usesVisitor collects the identifiers a program reads and the trait
// fields it accesses as traits.<name>.
type usesVisitor struct {
	idents       map[string]int
	traits       []string
	traitMembers int
}

func (v *usesVisitor) Visit(n *exprast.Node) {
	if v.idents == nil {
		v.idents = map[string]int{}
	}
	switch x := (*n).(type) {
	case *exprast.IdentifierNode:
		v.idents[x.Value]++
	case *exprast.MemberNode:
		if id, ok := x.Node.(*exprast.IdentifierNode); ok && id.Value == "traits" {
			if p, ok := x.Property.(*exprast.StringNode); ok {
				v.traits = append(v.traits, p.Value)
				v.traitMembers++
			}
		}
	}
}

// stepCalls returns the opened/clicked/sent calls in the condition.
func (c *Condition) stepCalls() []stepCall { return c.calls }

// Eval evaluates the condition for env. Declared traits the lead lacks (or
// holds with another type) read as the field's default or zero value, so a
// type-checked condition never fails on data.
func (c *Condition) Eval(env *engine.Env) (bool, error) {
	vars := make(map[string]any, len(c.uses))
	if c.uses["traits"] {
		traits := make(map[string]any, len(c.traits))
		var lt map[string]any
		if env.Lead != nil {
			lt = env.Lead.Traits
		}
		for _, fd := range c.traits {
			traits[fd.Name] = coerce(fd, lt[fd.Name])
		}
		vars["traits"] = traits
	}
	if c.uses["email"] {
		email := ""
		if env.Lead != nil {
			email = env.Lead.Email
		}
		vars["email"] = email
	}
	if c.uses["score"] {
		vars["score"] = env.Score
	}
	if c.uses["now"] {
		vars["now"] = env.Now
	}
	if c.uses["event"] {
		ev := map[string]any{"id": "", "type": "", "machine": false, "time": time.Time{}, "properties": map[string]any{}}
		if e := env.Event; e != nil {
			ev["id"], ev["type"], ev["machine"], ev["time"] = e.ID, e.Type, e.Machine, e.Time
			if e.Properties != nil {
				ev["properties"] = e.Properties
			}
		}
		vars["event"] = ev
	}
	if c.scope == scopeEnrollment {
		en := env.Enrollment
		if en == nil {
			en = &engine.Enrollment{}
		}
		for _, fn := range stepFuncs {
			name := stepVar(fn)
			if !c.uses[name] {
				continue
			}
			var list []string
			switch fn {
			case "opened":
				list = en.Opened
			case "clicked":
				list = en.Clicked
			case "sent":
				list = en.Sent
			}
			if list == nil {
				list = []string{}
			}
			vars[name] = list
		}
	}
	out, err := expr.Run(c.prog, vars)
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", c.Source, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: result is %T, not bool", c.Source, out)
	}
	return b, nil
}

// String returns the condition's source.
func (c *Condition) String() string { return c.Source }

// coerce converts a trait value to the declared type, falling back to the
// default or the zero value.
func coerce(fd Field, v any) any {
	switch fd.Type {
	case FieldNumber:
		switch x := v.(type) {
		case float64:
			return v // already boxed: no allocation
		case float32:
			return float64(x)
		case int:
			return float64(x)
		case int64:
			return float64(x)
		case int32:
			return float64(x)
		case uint64:
			return float64(x)
		case json.Number:
			if f, err := x.Float64(); err == nil {
				return f
			}
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f
			}
		}
		if d, ok := fd.Default.(float64); ok {
			return d
		}
		return 0.0
	case FieldBool:
		if _, ok := v.(bool); ok {
			return v
		}
		if d, ok := fd.Default.(bool); ok {
			return d
		}
		return false
	case FieldList:
		switch x := v.(type) {
		case []any:
			out := make([]any, 0, len(x))
			for _, it := range x {
				if s, ok := it.(string); ok {
					out = append(out, s)
				}
			}
			return out
		case []string:
			out := make([]any, len(x))
			for i, s := range x {
				out[i] = s
			}
			return out
		}
		if d, ok := fd.Default.([]any); ok {
			return d
		}
		return []any{}
	default:
		switch x := v.(type) {
		case string:
			if x != "" || fd.Default == nil {
				return v
			}
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		case json.Number:
			return x.String()
		case bool:
			return strconv.FormatBool(x)
		}
		if d, ok := fd.Default.(string); ok {
			return d
		}
		return ""
	}
}

// condition compiles the condition in node n, reporting problems at the
// position of the expression inside the YAML file.
func (f *yfile) condition(n ast.Node, what string, fields map[string]Field, scope exprScope) (*Condition, bool) {
	src, ok := f.str(n, what)
	if !ok {
		return nil, false
	}
	c, err := compileCondition(src, fields, scope)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			line, col := f.exprPos(n, fe.Line, fe.Column)
			msg := fe.Message
			if scope == scopeLead && isStepFuncError(msg) {
				msg += " (opened/clicked/sent are only available inside a sequence: branch, exit and wait_for match)"
			}
			msg += exprHint(msg, fields)
			f.errAt(line, col, "%s: %s", what, msg)
		} else {
			f.errf(n, "%s: %v", what, err)
		}
		return nil, false
	}
	return c, true
}

func isStepFuncError(msg string) bool {
	for _, fn := range stepFuncs {
		if strings.Contains(msg, "unknown name "+fn) {
			return true
		}
	}
	return false
}

// exprHint adds a did-you-mean to unknown fields and names.
func exprHint(msg string, fields map[string]Field) string {
	var cands []string
	var name string
	switch {
	case strings.HasPrefix(msg, "unknown field "):
		name = strings.TrimSpace(strings.TrimPrefix(msg, "unknown field "))
		for n := range fields {
			cands = append(cands, n)
		}
	case strings.HasPrefix(msg, "unknown name "):
		name = strings.TrimSpace(strings.TrimPrefix(msg, "unknown name "))
		cands = append(cands, "traits", "email", "score", "now", "event", "opened", "clicked", "sent")
		if _, ok := fields[name]; ok {
			return fmt.Sprintf(" (lead fields are under traits: traits.%s)", name)
		}
	default:
		return ""
	}
	slices.Sort(cands)
	s := suggest(name, cands)
	if s == "" && strings.HasPrefix(msg, "unknown field ") {
		return " (declare lead fields in nurture.yaml under fields:)"
	}
	return s
}

// exprPos maps a position inside an expression (line 1-based, column
// 0-based, as expr reports them) to the YAML file.
func (f *yfile) exprPos(n ast.Node, eline, ecol int) (int, int) {
	line, col := pos(n)
	if eline < 1 {
		eline = 1
	}
	switch v := n.(type) {
	case *ast.LiteralNode:
		// Block scalar (| or >): the expression starts on the next line,
		// indented.
		// Folded blocks (>) join lines, so only the start is exact.
		base := f.indent(line + 1)
		if v.Start != nil && strings.HasPrefix(v.Start.Value, ">") {
			return line + 1, base + 1
		}
		return line + eline, base + 1 + ecol
	case *ast.StringNode:
		if eline > 1 {
			// Multi-line plain scalars are folded too.
			return line, col
		}
		if tk := v.GetToken(); tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
			col++
		}
	}
	return line, col + ecol
}

// indent is the number of leading spaces on a 1-based line of the file.
func (f *yfile) indent(line int) int {
	if line < 1 || line > len(f.lines) {
		return 0
	}
	l := f.lines[line-1]
	return len(l) - len(strings.TrimLeft(l, " "))
}
