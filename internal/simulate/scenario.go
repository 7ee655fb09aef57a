package simulate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// MaxScenarioSize is the largest scenario file Parse accepts.
const MaxScenarioSize = 64 << 20

// Scenario is a parsed, checked scenario: who the leads are, what happens to
// them and when, and the virtual time span to run.
type Scenario struct {
	// Path is the file the scenario came from (used in problems).
	Path  string
	Start time.Time // the virtual clock starts here (UTC)
	Until time.Time // every timer due strictly before Until fires (UTC)
	Leads []Lead
	// Events sorted by At; events at the same instant keep file order.
	Events []Event
	Reps   Reps
}

// Lead is a lead as it exists at Start.
type Lead struct {
	ID     string
	Email  string
	Traits map[string]any
	// Pos is where the lead is declared.
	Pos Pos
}

// Event is one scripted lead event.
type Event struct {
	At         time.Time
	Lead       string
	Type       string
	ID         string
	Email      string
	Properties map[string]any
	Traits     map[string]any
	Machine    bool
	// Index is the event's position in the file (0-based); ties at the same
	// instant are broken by it.
	Index int
	Pos   Pos
}

// Reps is the initial routing desk: reps away at Start and reps who
// already carry open escalations.
type Reps struct {
	Away []string
	Open map[string]int
	// Pos locates each rep id mentioned, for problems about unknown reps.
	Pos map[string]Pos
}

// Pos is a position in the scenario file (1-based line and column).
type Pos struct {
	Line, Col int
}

// Problem is one thing wrong with a scenario, at a position.
type Problem struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", p.Path, p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Msg)
}

// ProblemsError lists every problem found in a scenario, in file order.
type ProblemsError struct {
	Problems []Problem
}

func (e *ProblemsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ErrScenario is matched (errors.Is) by every *ProblemsError.
var ErrScenario = errors.New("invalid scenario")

func (e *ProblemsError) Is(target error) bool { return target == ErrScenario }

// ParseFile reads and parses the scenario at path.
func ParseFile(path string) (*Scenario, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", path, err)
	}
	if fi.Size() > MaxScenarioSize {
		return nil, &ProblemsError{Problems: []Problem{{Path: path, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", fi.Size(), MaxScenarioSize)}}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", path, err)
	}
	return Parse(filepath.ToSlash(path), data)
}

// raw* mirror the file. Fields that need positions in problems use str.
type rawScenario struct {
	Start  str        `yaml:"start"`
	Until  str        `yaml:"until"`
	Leads  []rawLead  `yaml:"leads"`
	Events []rawEvent `yaml:"events"`
	Reps   *rawReps   `yaml:"reps"`
}

type rawLead struct {
	ID     str            `yaml:"id"`
	Email  str            `yaml:"email"`
	Traits map[string]any `yaml:"traits"`
}

type rawEvent struct {
	At         str            `yaml:"at"`
	Lead       str            `yaml:"lead"`
	Type       str            `yaml:"type"`
	ID         str            `yaml:"id"`
	Email      str            `yaml:"email"`
	Properties map[string]any `yaml:"properties"`
	Traits     map[string]any `yaml:"traits"`
	Machine    bool           `yaml:"machine"`
}

type rawReps struct {
	Away []str          `yaml:"away"`
	Open map[string]int `yaml:"open"`
}

// str is a scalar decoded as text, remembering where it was.
type str struct {
	V   string
	Pos Pos
	Set bool
}

func (s *str) UnmarshalYAML(n ast.Node) error {
	tk := n.GetToken()
	if tk != nil {
		s.Pos = Pos{tk.Position.Line, tk.Position.Column}
	}
	switch n := n.(type) {
	case *ast.StringNode:
		s.V = n.Value
	case *ast.NullNode:
		s.V = ""
	case ast.ScalarNode:
		s.V = tk.Value
	default:
		return &scalarError{tok: s.Pos, kind: n.Type().YAMLName()}
	}
	s.Set = true
	return nil
}

type scalarError struct {
	tok  Pos
	kind string
}

func (e *scalarError) Error() string {
	return fmt.Sprintf("expected a single value, found a %s", e.kind)
}

// Parse parses and checks a scenario. path is only used in problems. Every
// problem found is reported (YAML syntax and type errors stop the parse at
// the first one, since nothing after them can be trusted).
func Parse(path string, data []byte) (*Scenario, error) {
	ps := &problems{path: path}
	if len(data) > MaxScenarioSize {
		ps.add(Pos{}, "file is %d bytes; the limit is %d", len(data), MaxScenarioSize)
		return nil, ps.err()
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		ps.addYAML(err)
		return nil, ps.err()
	}
	if len(file.Docs) != 1 || file.Docs[0].Body == nil {
		ps.add(Pos{1, 1}, "expected one YAML document with start, until, leads and events")
		return nil, ps.err()
	}
	body := file.Docs[0].Body
	var aliasErr bool
	ast.Walk(visitFunc(func(n ast.Node) bool {
		switch n.(type) {
		case *ast.AliasNode, *ast.AnchorNode:
			if !aliasErr {
				tk := n.GetToken()
				ps.add(Pos{tk.Position.Line, tk.Position.Column}, "YAML anchors and aliases are not allowed in scenarios")
				aliasErr = true
			}
			return false
		case *ast.TagNode:
			if !aliasErr {
				tk := n.GetToken()
				ps.add(Pos{tk.Position.Line, tk.Position.Column}, "YAML tags (%s) are not allowed in scenarios", tk.Value)
				aliasErr = true
			}
			return false
		}
		return true
	}), body)
	if aliasErr {
		return nil, ps.err()
	}
	if _, ok := body.(*ast.MappingNode); !ok {
		tk := body.GetToken()
		ps.add(Pos{tk.Position.Line, tk.Position.Column}, "expected a mapping with start, until, leads and events, found a %s", body.Type().YAMLName())
		return nil, ps.err()
	}
	var raw rawScenario
	if err := decode(body, &raw); err != nil {
		ps.addYAML(err)
		return nil, ps.err()
	}
	sc := &Scenario{Path: path}
	sc.Start = ps.absTime(raw.Start, "start")
	sc.Until = ps.absTime(raw.Until, "until")
	if !sc.Start.IsZero() && !sc.Until.IsZero() && !sc.Until.After(sc.Start) {
		ps.add(raw.Until.Pos, "until (%s) must be after start (%s)", raw.Until.V, raw.Start.V)
	}

	// Leads.
	if len(raw.Leads) == 0 {
		ps.add(Pos{1, 1}, "no leads: declare at least one under leads:")
	}
	seen := map[string]Pos{}
	var ids []string
	for i, rl := range raw.Leads {
		if !rl.ID.Set || rl.ID.V == "" {
			ps.add(rl.Email.Pos, "leads[%d]: missing id", i)
			continue
		}
		if p, dup := seen[rl.ID.V]; dup {
			ps.add(rl.ID.Pos, "lead %q is declared twice (first at line %d)", rl.ID.V, p.Line)
			continue
		}
		seen[rl.ID.V] = rl.ID.Pos
		ids = append(ids, rl.ID.V)
		if rl.Email.V != "" && !strings.Contains(rl.Email.V, "@") {
			ps.add(rl.Email.Pos, "lead %q: email %q is not an address", rl.ID.V, rl.Email.V)
		}
		sc.Leads = append(sc.Leads, Lead{ID: rl.ID.V, Email: rl.Email.V, Traits: normalizeMap(rl.Traits), Pos: rl.ID.Pos})
	}

	// Events.
	for i, re := range raw.Events {
		ev := Event{Index: i, Pos: re.At.Pos, Type: re.Type.V, Lead: re.Lead.V, ID: re.ID.V, Email: re.Email.V,
			Properties: normalizeMap(re.Properties), Traits: normalizeMap(re.Traits), Machine: re.Machine}
		if !re.At.Set {
			ps.add(firstPos(re.Lead.Pos, re.Type.Pos), "events[%d]: missing at", i)
		} else {
			ev.At = ps.eventTime(re.At, sc.Start)
		}
		switch {
		case !re.Lead.Set || re.Lead.V == "":
			ps.add(firstPos(re.At.Pos, re.Type.Pos), "events[%d]: missing lead", i)
		default:
			if _, ok := seen[re.Lead.V]; !ok {
				ps.add(re.Lead.Pos, "unknown lead %q%s", re.Lead.V, suggest(re.Lead.V, ids))
			}
		}
		if !re.Type.Set || re.Type.V == "" {
			ps.add(firstPos(re.At.Pos, re.Lead.Pos), "events[%d]: missing type", i)
		}
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("sim-%d", i+1)
		}
		if !ev.At.IsZero() && !sc.Start.IsZero() && ev.At.Before(sc.Start) {
			ps.add(re.At.Pos, "event at %s is before start (%s)", ev.At.Format(time.RFC3339), sc.Start.Format(time.RFC3339))
		}
		if !ev.At.IsZero() && !sc.Until.IsZero() && !ev.At.Before(sc.Until) {
			ps.add(re.At.Pos, "event at %s is not before until (%s)", ev.At.Format(time.RFC3339), sc.Until.Format(time.RFC3339))
		}
		sc.Events = append(sc.Events, ev)
	}
	slices.SortStableFunc(sc.Events, func(a, b Event) int { return a.At.Compare(b.At) })

	// Reps.
	sc.Reps.Pos = map[string]Pos{}
	if raw.Reps != nil {
		for _, a := range raw.Reps.Away {
			if a.V == "" {
				ps.add(a.Pos, "reps.away: empty rep id")
				continue
			}
			sc.Reps.Away = append(sc.Reps.Away, a.V)
			sc.Reps.Pos[a.V] = a.Pos
		}
		sc.Reps.Open = raw.Reps.Open
		for id, n := range raw.Reps.Open {
			if n < 0 {
				ps.add(Pos{}, "reps.open: %s has %d open escalations; must be 0 or more", id, n)
			}
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return sc, nil
}

// decode runs the YAML decoder, turning a panic inside it (it has had some
// on odd input) into an error: bad input must never crash the command.
func decode(body ast.Node, raw *rawScenario) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot decode the scenario: %v", p)
		}
	}()
	return yaml.NodeToValue(body, raw, yaml.DisallowUnknownField())
}

func firstPos(ps ...Pos) Pos {
	for _, p := range ps {
		if p.Line > 0 {
			return p
		}
	}
	return Pos{}
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

type problems struct {
	path string
	list []Problem
}

func (ps *problems) add(p Pos, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: ps.path, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) addYAML(err error) {
	var ye yaml.Error
	var se *scalarError
	switch {
	case errors.As(err, &se):
		ps.add(se.tok, "%s", se.Error())
	case errors.As(err, &ye) && ye.GetToken() != nil:
		tk := ye.GetToken()
		msg := cleanYAMLMessage(ye.GetMessage())
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			msg += suggest(strings.Trim(tk.Value, `"'`), knownKeys)
		}
		ps.add(Pos{tk.Position.Line, tk.Position.Column}, "%s", msg)
	default:
		ps.add(Pos{}, "%v", err)
	}
}

// knownKeys are every key a scenario may use, for "did you mean" hints.
var knownKeys = []string{"start", "until", "leads", "events", "reps", "id", "email", "traits",
	"at", "lead", "type", "properties", "machine", "away", "open"}

func cleanYAMLMessage(m string) string {
	m = strings.TrimSpace(m)
	m = strings.Replace(m, "unknown field", "unknown key", 1)
	m = strings.Replace(m, "into Go struct field ", "into ", 1)
	m = strings.Replace(m, "rawScenario.", "", 1)
	m = strings.Replace(m, "rawLead.", "", 1)
	m = strings.Replace(m, "rawEvent.", "", 1)
	m = strings.Replace(m, "rawReps.", "", 1)
	return m
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	out := slices.Clone(ps.list)
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return &ProblemsError{Problems: slices.Compact(out)}
}

func (ps *problems) absTime(s str, key string) time.Time {
	if !s.Set || s.V == "" {
		ps.add(Pos{1, 1}, "missing %s (an RFC 3339 time such as 2026-03-02T08:00:00Z)", key)
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s.V)
	if err != nil {
		ps.add(s.Pos, "%s: %q is not an RFC 3339 time such as 2026-03-02T08:00:00Z", key, s.V)
		return time.Time{}
	}
	return t.UTC()
}

func (ps *problems) eventTime(s str, start time.Time) time.Time {
	if strings.HasPrefix(s.V, "+") {
		d, err := ParseOffset(s.V)
		if err != nil {
			ps.add(s.Pos, "at: %v", err)
			return time.Time{}
		}
		if start.IsZero() {
			return time.Time{}
		}
		return start.Add(d)
	}
	t, err := time.Parse(time.RFC3339, s.V)
	if err != nil {
		ps.add(s.Pos, "at: %q is neither an RFC 3339 time (2026-03-02T08:00:00Z) nor an offset from start (+50h, +2d, +1d6h30m)", s.V)
		return time.Time{}
	}
	return t.UTC()
}

// ParseOffset parses an offset from the scenario start: "+" followed by one
// or more number-unit pairs, units w (7 days), d (24 hours), h, m, s, e.g.
// "+50h", "+2d", "+1w2d", "+1d6h30m". Days are exactly 24 hours: offsets are
// absolute, not calendar days in any time zone.
func ParseOffset(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "+")
	if !ok || rest == "" {
		return 0, fmt.Errorf("offset %q must look like +50h, +2d or +1d6h30m", s)
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("offset %q must look like +50h, +2d or +1d6h30m", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<31 {
			return 0, fmt.Errorf("offset %q is too large", s)
		}
		var unit time.Duration
		switch rest[i] {
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		case 's':
			unit = time.Second
		default:
			return 0, fmt.Errorf("offset %q: unknown unit %q (use w, d, h, m or s)", s, rest[i])
		}
		if time.Duration(n) > math.MaxInt64/unit-total/unit {
			return 0, fmt.Errorf("offset %q is too large", s)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// normalizeMap makes YAML values look as they would after a trip through
// JSON (how production receives traits and properties): integers become
// float64, nested maps become map[string]any.
func normalizeMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case int32:
		return float64(v)
	case float32:
		return float64(v)
	case map[string]any:
		return normalizeMap(v)
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = normalizeValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalizeValue(x)
		}
		return out
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	default:
		return v
	}
}

func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(s, c)
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= 2 && bestD < len(s) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Clone returns a scenario with n leads: lead k is a copy of the scenario's
// lead k mod len(Leads), with id "<id>.<k/len+1>" (zero-padded), a matching
// email ("ana+00001@example.com") and a copy of every event of the original
// lead. Events of clones keep the original's time, so a clone of a 30-day
// scenario is still a 30-day scenario. Used to measure speed with many leads.
func Clone(sc *Scenario, n int) *Scenario {
	if n <= 0 || len(sc.Leads) == 0 {
		return sc
	}
	out := *sc
	out.Leads = make([]Lead, 0, n)
	width := len(strconv.Itoa((n + len(sc.Leads) - 1) / len(sc.Leads)))
	copies := map[string][]string{} // original id -> clone ids
	for k := range n {
		orig := sc.Leads[k%len(sc.Leads)]
		c := k/len(sc.Leads) + 1
		id := fmt.Sprintf("%s.%0*d", orig.ID, width, c)
		email := orig.Email
		if local, domain, ok := strings.Cut(email, "@"); ok {
			email = fmt.Sprintf("%s+%0*d@%s", local, width, c, domain)
		}
		l := orig
		l.ID, l.Email = id, email
		out.Leads = append(out.Leads, l)
		copies[orig.ID] = append(copies[orig.ID], id)
	}
	out.Events = make([]Event, 0, len(sc.Events)*max(1, n/len(sc.Leads)))
	idx := 0
	for _, ev := range sc.Events { // already sorted by (At, Index)
		for _, id := range copies[ev.Lead] {
			e := ev
			e.Lead = id
			e.ID = ev.ID + "/" + id
			e.Index = idx
			idx++
			out.Events = append(out.Events, e)
		}
	}
	return &out
}
