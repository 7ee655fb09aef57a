package sequences

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/nurture-oss/nurture/engine"
)

var (
	stepIDRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	sequenceIDRe = stepIDRe
	eventTypeRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`)
)

var sequenceKeys = []string{"id", "name", "description", "from", "reply_to", "transactional", "in_flight", "enroll", "exit", "send_window", "steps"}

// stepActions are the keys that make a step what it is; exactly one per step.
var stepActions = []string{"email", "wait", "wait_until", "wait_for", "branch", "goto", "end"}

// stepKeys lists, per action, the keys a step of that kind may carry.
var stepKeys = map[string][]string{
	"email":      {"id", "email", "then", "description"},
	"wait":       {"id", "wait", "then", "description"},
	"wait_until": {"id", "wait_until", "then", "description"},
	"wait_for":   {"id", "wait_for", "match", "timeout", "on_timeout", "then", "description"},
	"branch":     {"id", "branch", "else", "description"},
	"goto":       {"id", "goto", "description"},
	"end":        {"id", "end", "description"},
}

func allStepKeys() []string {
	var all []string
	for _, ks := range stepKeys {
		for _, k := range ks {
			if !slices.Contains(all, k) {
				all = append(all, k)
			}
		}
	}
	slices.Sort(all)
	return all
}

// compiler holds what every sequence is compiled against.
type compiler struct {
	ps        *problems
	project   *Project
	calendars map[string]*Calendar
	templates map[string]*Template // nil value: the template exists but has problems
}

// Source is the raw text of one version of a sequence file, as published.
// The runtime stores Sources so enrollments pinned to an older version can
// still be served after the file changed on disk.
type Source struct {
	Sequence string // sequence id
	Version  string // version hash (see Version)
	Path     string // path relative to the content directory, for problems
	Raw      []byte // the sequence file's bytes
}

// target is a jump target with the node naming it, checked once all step
// ids are known.
type target struct {
	id   string
	node ast.Node
	what string
}

// compileSequence compiles one sequence file. It returns nil when the file
// has problems (already reported).
func (c *compiler) compileSequence(path string, raw []byte) *engine.Sequence {
	f := &yfile{path: path, ps: c.ps}
	root := f.parse(raw)
	if root == nil {
		return nil
	}
	m := f.mapping(root, "sequence", sequenceKeys)
	if m == nil {
		return nil
	}
	s := &engine.Sequence{InFlight: engine.InFlightContinue, From: c.project.From, ReplyTo: c.project.ReplyTo}
	m.require("sequence", "id", "enroll", "steps")
	if n := m.get("id"); n != nil {
		if id, ok := f.str(n, "id"); ok {
			if !sequenceIDRe.MatchString(id) {
				f.errf(n, "sequence id %q must be lower-case letters, digits, - and _", id)
			}
			s.ID = id
		}
	}
	if n := m.get("name"); n != nil {
		s.Name, _ = f.str(n, "name")
	}
	if n := m.get("description"); n != nil {
		f.str(n, "description")
	}
	if n := m.get("from"); n != nil {
		s.From, _ = f.address(n, "from")
	}
	if n := m.get("reply_to"); n != nil {
		s.ReplyTo, _ = f.address(n, "reply_to")
	}
	if n := m.get("transactional"); n != nil {
		s.Transactional, _ = f.boolean(n, "transactional")
	}
	if n := m.get("in_flight"); n != nil {
		if v, ok := f.enum(n, "in_flight", []string{"continue", "migrate", "exit"}); ok {
			s.InFlight = engine.InFlightPolicy(v)
		}
	}
	if n := m.get("enroll"); n != nil {
		s.Enroll = c.enroll(f, n)
	}
	if n := m.get("exit"); n != nil {
		s.Exit = c.exit(f, n)
	}
	if n := m.get("send_window"); n != nil {
		s.Window = c.window(f, n)
	}
	var targets []target
	var stepCalls []stepCallAt
	if n := m.get("steps"); n != nil {
		s.Steps, targets, stepCalls = c.steps(f, n, s)
	}
	c.checkFlow(f, s, targets, stepCalls, m.get("steps"))
	if f.bad {
		return nil
	}
	return s
}

// enum decodes a string that must be one of values.
func (f *yfile) enum(n ast.Node, what string, values []string) (string, bool) {
	v, ok := f.str(n, what)
	if !ok {
		return "", false
	}
	if !slices.Contains(values, v) {
		f.errf(n, "%s must be one of %s, got %q%s", what, strings.Join(values, ", "), v, suggest(v, values))
		return "", false
	}
	return v, true
}

func (f *yfile) eventTypes(n ast.Node, what string) []string {
	vals, nodes := f.strs(n, what)
	for i, v := range vals {
		if !eventTypeRe.MatchString(v) {
			f.errf(nodes[i], "%s: bad event type %q", what, v)
		}
	}
	return vals
}

func (c *compiler) enroll(f *yfile, n ast.Node) engine.Enroll {
	e := engine.Enroll{Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}}
	m := f.mapping(n, "enroll", []string{"on", "if", "reenroll"})
	if m == nil {
		return e
	}
	if m.require("enroll", "on") {
		e.On = f.eventTypes(m.get("on"), "enroll.on")
	}
	if n := m.get("if"); n != nil {
		if cond, ok := f.condition(n, "enroll.if", c.project.Fields, scopeLead); ok {
			e.Condition = cond
		}
	}
	if n := m.get("reenroll"); n != nil {
		if _, ok := scalarString(n); ok {
			if v, ok := f.enum(n, "reenroll", []string{"never", "always"}); ok {
				e.Reenroll.Mode = engine.ReenrollMode(v)
			}
		} else if rm := f.mapping(n, "reenroll", []string{"after"}); rm != nil && rm.require("reenroll", "after") {
			if d, ok := f.duration(rm.get("after"), "reenroll.after"); ok {
				e.Reenroll = engine.Reenroll{Mode: engine.ReenrollAfter, After: d}
			}
		}
	}
	return e
}

func (c *compiler) exit(f *yfile, n ast.Node) engine.Exit {
	var e engine.Exit
	m := f.mapping(n, "exit", []string{"on", "if", "on_escalation"})
	if m == nil {
		return e
	}
	if n := m.get("on"); n != nil {
		e.On = f.eventTypes(n, "exit.on")
	}
	if n := m.get("if"); n != nil {
		if cond, ok := f.condition(n, "exit.if", c.project.Fields, scopeEnrollment); ok {
			e.Condition = cond
		}
	}
	if n := m.get("on_escalation"); n != nil {
		if v, ok := f.enum(n, "exit.on_escalation", []string{"exit", "pause", "continue"}); ok {
			e.OnEscalation = engine.EscalationAction(v)
		}
	}
	if len(e.On) == 0 && e.Condition == nil && e.OnEscalation == "" && !f.bad {
		f.errf(n, "exit needs at least one of on, if, on_escalation")
	}
	return e
}

func (c *compiler) window(f *yfile, n ast.Node) *engine.Window {
	m := f.mapping(n, "send_window", []string{"at", "timezone_from", "default_timezone", "holidays"})
	if m == nil || !m.require("send_window", "at") {
		return nil
	}
	w := &engine.Window{DefaultZone: c.project.Timezone}
	if sched, ok := f.cron(m.get("at"), "send_window.at"); ok {
		w.At = sched
	}
	if n := m.get("timezone_from"); n != nil {
		w.TimezoneTrait = c.traitRef(f, n, "send_window.timezone_from")
	}
	if n := m.get("default_timezone"); n != nil {
		if loc, ok := f.location(n, "send_window.default_timezone"); ok {
			w.DefaultZone = loc
		}
	}
	if n := m.get("holidays"); n != nil {
		if cal := f.holidays(n, c.calendars); cal != nil && cal.Len() > 0 {
			w.Holidays = cal
		}
	}
	return w
}

// traitRef decodes "traits.<field>" naming a declared string field.
func (c *compiler) traitRef(f *yfile, n ast.Node, what string) string {
	s, ok := f.str(n, what)
	if !ok {
		return ""
	}
	name, found := strings.CutPrefix(s, "traits.")
	if !found {
		f.errf(n, "%s must name a lead field as traits.<field>, got %q", what, s)
		return ""
	}
	fd, ok := c.project.Fields[name]
	if !ok {
		f.errf(n, "%s: %q is not a declared lead field%s", what, name, suggest(name, sortedFieldNames(c.project.Fields)))
		return ""
	}
	if fd.Type != FieldString && fd.Type != "" {
		f.errf(n, "%s: field %q is a %s; it must be a string", what, name, fd.Type)
		return ""
	}
	return name
}

type stepCallAt struct {
	node ast.Node
	cond *Condition
	what string
}

func (c *compiler) steps(f *yfile, n ast.Node, s *engine.Sequence) ([]*engine.Step, []target, []stepCallAt) {
	items, ok := f.list(n, "steps", false)
	if !ok {
		return nil, nil, nil
	}
	if len(items) == 0 {
		f.errf(n, "steps must not be empty")
		return nil, nil, nil
	}
	if len(items) > 500 {
		f.errf(n, "a sequence may have at most 500 steps")
		return nil, nil, nil
	}
	fields := c.project.Fields
	var steps []*engine.Step
	var targets []target
	var calls []stepCallAt
	seen := map[string]bool{}
	all := allStepKeys()
	for i, it := range items {
		m := f.mapping(it, "step", all)
		if m == nil {
			continue
		}
		st := &engine.Step{}
		what := "step " + strconv.Itoa(i+1)
		if n := m.get("id"); n != nil {
			if id, ok := f.str(n, "step id"); ok {
				switch {
				case id == engine.StepEndID:
					f.errf(n, "step id %q is reserved (it means: complete the sequence)", id)
				case !stepIDRe.MatchString(id):
					f.errf(n, "step id %q must be lower-case letters, digits, - and _", id)
				case seen[id]:
					f.errf(n, "duplicate step id %q", id)
				default:
					st.ID = id
					what = "step " + id
				}
				seen[id] = true
			}
		} else {
			f.errf(it, "%s is missing required key \"id\"", what)
		}
		var actions []string
		for _, k := range m.order {
			if slices.Contains(stepActions, k) {
				actions = append(actions, k)
			}
		}
		if len(actions) == 0 {
			f.errf(it, "%s has no action: add one of %s", what, strings.Join(stepActions, ", "))
			continue
		}
		if len(actions) > 1 {
			f.errf(m.keys[actions[1]], "%s has more than one action (%s); split it into separate steps", what, strings.Join(actions, ", "))
			continue
		}
		action := actions[0]
		st.Kind = engine.StepKind(action)
		for _, k := range m.order {
			if !slices.Contains(stepKeys[action], k) {
				f.errf(m.keys[k], "key %q does not apply to a %s step", k, action)
			}
		}
		v := m.get(action)
		switch action {
		case "email":
			if id, ok := f.str(v, "email"); ok {
				st.Template = id
				t, exists := c.templates[id]
				switch {
				case !exists:
					ids := make([]string, 0, len(c.templates))
					for id := range c.templates {
						ids = append(ids, id)
					}
					slices.Sort(ids)
					f.errf(v, "template %q not found (expected templates/%s.html)%s", id, id, suggest(id, ids))
				case t != nil && t.From == "" && s.From == "":
					f.errf(v, "%s: no sender: set from in the template, the sequence or nurture.yaml defaults", what)
				}
			}
		case "wait":
			if w, ok := f.wait(v, "wait"); ok {
				st.Wait, st.BusinessDays = w.D, w.BusinessDays
			}
		case "wait_until":
			if sched, ok := f.cron(v, "wait_until"); ok {
				st.At = sched
			}
		case "wait_for":
			if ev := f.eventTypes(v, "wait_for"); len(ev) > 1 {
				f.errf(v, "wait_for waits for one event type")
			} else if len(ev) == 1 {
				st.Event = ev[0]
			}
			if n := m.get("timeout"); n != nil {
				st.Timeout, _ = f.duration(n, "timeout")
			} else {
				f.errf(m.keys["wait_for"], "%s: wait_for needs a timeout (and optionally on_timeout: <step>)", what)
			}
			if n := m.get("match"); n != nil {
				if cond, ok := f.condition(n, "match", fields, scopeEnrollment); ok {
					st.Match = cond
					calls = append(calls, stepCallAt{n, cond, "match"})
				}
			}
			if n := m.get("on_timeout"); n != nil {
				if id, ok := f.str(n, "on_timeout"); ok {
					st.OnTimeout = id
					targets = append(targets, target{id, n, "on_timeout"})
				}
			}
		case "branch":
			cases, ok := f.list(v, "branch", false)
			if ok && len(cases) == 0 {
				f.errf(v, "branch needs at least one case (- if: ..., goto: ...)")
			}
			for _, cn := range cases {
				cm := f.mapping(cn, "branch case", []string{"if", "goto"})
				if cm == nil || !cm.require("branch case", "if", "goto") {
					continue
				}
				var bc engine.BranchCase
				if cond, ok := f.condition(cm.get("if"), "if", fields, scopeEnrollment); ok {
					bc.If = cond
					calls = append(calls, stepCallAt{cm.get("if"), cond, "if"})
				}
				if id, ok := f.str(cm.get("goto"), "goto"); ok {
					bc.Goto = id
					targets = append(targets, target{id, cm.get("goto"), "goto"})
				}
				st.Cases = append(st.Cases, bc)
			}
			if n := m.get("else"); n != nil {
				if id, ok := f.str(n, "else"); ok {
					st.Else = id
					targets = append(targets, target{id, n, "else"})
				}
			}
		case "goto":
			if id, ok := f.str(v, "goto"); ok {
				st.Then = id
				targets = append(targets, target{id, v, "goto"})
			}
		case "end":
			if b, ok := f.boolean(v, "end"); ok && !b {
				f.errf(v, "end must be true (remove the step to not end here)")
			}
		}
		if n := m.get("then"); n != nil {
			if id, ok := f.str(n, "then"); ok {
				st.Then = id
				targets = append(targets, target{id, n, "then"})
			}
		}
		if n := m.get("description"); n != nil {
			f.str(n, "description")
		}
		steps = append(steps, st)
	}
	return steps, targets, calls
}

// checkFlow checks jump targets, opened/clicked/sent arguments,
// reachability and loops that never wait.
func (c *compiler) checkFlow(f *yfile, s *engine.Sequence, targets []target, calls []stepCallAt, stepsNode ast.Node) {
	index := map[string]int{}
	ids := []string{engine.StepEndID}
	for i, st := range s.Steps {
		if st.ID != "" {
			index[st.ID] = i
			ids = append(ids, st.ID)
		}
	}
	for _, t := range targets {
		if t.id == engine.StepEndID {
			continue
		}
		if _, ok := index[t.id]; !ok {
			f.errf(t.node, "%s target %q is not a step in this sequence (use a step id or end)%s", t.what, t.id, suggest(t.id, ids))
		}
	}
	emailSteps := map[string]bool{}
	for _, st := range s.Steps {
		if st.Kind == engine.StepEmail {
			emailSteps[st.ID] = true
		}
	}
	for _, c := range calls {
		for _, sc := range c.cond.stepCalls() {
			el, ec := runeLineCol(c.cond.Source, sc.loc.From)
			line, col := f.exprPos(c.node, el, ec)
			switch {
			case sc.step == "":
				f.errAt(line, col, "%s: %s() takes a step id in quotes, e.g. %s(\"welcome\")", c.what, sc.fn, sc.fn)
			case !emailSteps[sc.step]:
				if _, isStep := index[sc.step]; isStep {
					f.errAt(line, col, "%s: %s(%q): step %q does not send an email", c.what, sc.fn, sc.step, sc.step)
				} else {
					var es []string
					for id := range emailSteps {
						es = append(es, id)
					}
					slices.Sort(es)
					f.errAt(line, col, "%s: %s(%q): no email step %q in this sequence%s", c.what, sc.fn, sc.step, sc.step, suggest(sc.step, es))
				}
			}
		}
	}
	if f.bad || len(s.Steps) == 0 {
		return
	}
	// Reachability from the first step.
	next := func(i int) []int {
		st := s.Steps[i]
		follow := func(id string) int {
			if id == "" {
				return i + 1
			}
			if id == engine.StepEndID {
				return -1
			}
			return index[id]
		}
		switch st.Kind {
		case engine.StepEnd:
			return nil
		case engine.StepGoto:
			return []int{follow(st.Then)}
		case engine.StepBranch:
			out := []int{follow(st.Else)}
			for _, bc := range st.Cases {
				out = append(out, follow(bc.Goto))
			}
			return out
		case engine.StepWaitFor:
			return []int{follow(st.Then), follow(st.OnTimeout)}
		default:
			return []int{follow(st.Then)}
		}
	}
	reached := make([]bool, len(s.Steps))
	queue := []int{0}
	reached[0] = true
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range next(i) {
			if j >= 0 && j < len(s.Steps) && !reached[j] {
				reached[j] = true
				queue = append(queue, j)
			}
		}
	}
	items := stepsNode.(*ast.SequenceNode).Values
	for i, ok := range reached {
		if !ok {
			f.errf(items[i], "step %q is unreachable: no step leads to it", s.Steps[i].ID)
		}
	}
	// Loops made only of steps that do not wait would spin forever.
	waits := func(k engine.StepKind) bool {
		return k == engine.StepWait || k == engine.StepWaitUntil || k == engine.StepWaitFor
	}
	state := make([]int, len(s.Steps)) // 0 new, 1 on stack, 2 done
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = 1
		for _, j := range next(i) {
			if j < 0 || j >= len(s.Steps) || waits(s.Steps[j].Kind) {
				continue
			}
			if state[j] == 1 {
				f.errf(items[j], "step %q is part of a loop that never waits (add a wait, wait_until or wait_for step to the loop)", s.Steps[j].ID)
				return true
			}
			if state[j] == 0 && visit(j) {
				return true
			}
		}
		state[i] = 2
		return false
	}
	for i, st := range s.Steps {
		if state[i] == 0 && !waits(st.Kind) && visit(i) {
			break
		}
	}
}

// versionHash is the version of a sequence: the sha256 of its file bytes
// (line endings normalised) followed by, for each template it sends in
// step order without repeats, the template id and its files. Any edit to
// the sequence file or to a template it sends is a new version.
func versionHash(raw []byte, steps []*engine.Step, templates map[string]*Template) string {
	h := sha256.New()
	h.Write([]byte(strings.ReplaceAll(string(raw), "\r\n", "\n")))
	var done []string
	for _, st := range steps {
		if st.Kind != engine.StepEmail || slices.Contains(done, st.Template) {
			continue
		}
		done = append(done, st.Template)
		h.Write([]byte{0})
		h.Write([]byte(st.Template))
		h.Write([]byte{0})
		if t := templates[st.Template]; t != nil {
			h.Write(t.raw)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// runeLineCol converts a rune offset in src to a 1-based line and a
// 0-based column, as expr-lang reports positions.
func runeLineCol(src string, offset int) (int, int) {
	line, col, i := 1, 0, 0
	for _, r := range src {
		if i == offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		i++
	}
	return line, col
}
