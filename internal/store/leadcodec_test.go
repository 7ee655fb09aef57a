package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/simulate"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/sequences"
)

// checkEncode: EncodeLead returns exactly json.Marshal's bytes, or its
// error.
func checkEncode(t testing.TB, l *engine.Lead) []byte {
	t.Helper()
	want, werr := json.Marshal(l)
	got, err := store.EncodeLead(l)
	if werr != nil {
		require.Error(t, err)
		require.Equal(t, werr.Error(), err.Error())
		return nil
	}
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	return got
}

// checkDecode: DecodeLead returns exactly what json.Unmarshal makes of doc,
// or its error.
func checkDecode(t testing.TB, doc []byte) {
	t.Helper()
	want := new(engine.Lead)
	werr := json.Unmarshal(doc, want)
	got, err := store.DecodeLead(doc)
	if werr != nil {
		require.Error(t, err, "doc %q", doc)
		require.Equal(t, werr.Error(), err.Error(), "doc %q", doc)
		return
	}
	require.NoError(t, err, "doc %q", doc)
	require.Equal(t, want, got, "doc %q", doc)
}

// checkLead runs l through both codecs, and the decoder also through
// reformatted variants of its document (indented, an unknown field first).
func checkLead(t testing.TB, l *engine.Lead) {
	t.Helper()
	doc := checkEncode(t, l)
	if doc == nil {
		return
	}
	checkDecode(t, doc)
	var ind bytes.Buffer
	require.NoError(t, json.Indent(&ind, doc, "", "\t"))
	checkDecode(t, ind.Bytes())
	if len(doc) > 2 && doc[0] == '{' {
		extra := append([]byte(`{"zz_unknown":{"a":[1,"x",null,true,{"b":-2.5e3}]},`), doc[1:]...)
		checkDecode(t, extra)
	}
	checkDecode(t, jsonbStyle(t, doc))
}

// jsonbStyle rewrites doc the way PostgreSQL prints a jsonb value (old rows
// were stored as jsonb, then converted to json as printed): object keys
// ordered by length then bytes, ", " and ": " separators.
func jsonbStyle(t testing.TB, doc []byte) []byte {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&v))
	var out bytes.Buffer
	var write func(v any)
	write = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b string) int {
				if len(a) != len(b) {
					return len(a) - len(b)
				}
				return strings.Compare(a, b)
			})
			out.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					out.WriteString(", ")
				}
				kb, _ := json.Marshal(k)
				out.Write(kb)
				out.WriteString(": ")
				write(x[k])
			}
			out.WriteByte('}')
		case []any:
			out.WriteByte('[')
			for i, y := range x {
				if i > 0 {
					out.WriteString(", ")
				}
				write(y)
			}
			out.WriteByte(']')
		default:
			b, err := json.Marshal(x)
			require.NoError(t, err)
			out.Write(b)
		}
	}
	write(v)
	return out.Bytes()
}

var zones = func() []*time.Location {
	zs := []*time.Location{time.UTC, time.Local, time.FixedZone("", 2*3600), time.FixedZone("", -(5*3600 + 30*60)),
		time.FixedZone("X", 14*3600), time.FixedZone("", 3600+30)}
	for _, name := range []string{"America/New_York", "Europe/Berlin", "Asia/Kolkata"} {
		if loc, err := time.LoadLocation(name); err == nil {
			zs = append(zs, loc)
		}
	}
	return zs
}()

type gen struct{ r *rand.Rand }

func (g gen) time() time.Time {
	switch g.r.IntN(10) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now() // with a monotonic reading
	}
	sec := g.r.Int64N(300*365*86400) + time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	var nsec int64
	switch g.r.IntN(4) {
	case 1:
		nsec = g.r.Int64N(1000) * 1e6
	case 2:
		nsec = g.r.Int64N(1e9)
	case 3:
		nsec = g.r.Int64N(1000) * 1000
	}
	return time.Unix(sec, nsec).In(zones[g.r.IntN(len(zones))])
}

var runes = []string{"a", "b", "Z", "0", " ", "_", "-", "<", ">", "&", `"`, `\`, "/", "\n", "\t", "\r", "\b", "\f",
	"\x00", "\x01", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029", "\U0001F600", "\xff", "\xc3", "\xed\xa0\x80", "\ufffd"}

func (g gen) str() string {
	if g.r.IntN(4) == 0 {
		return fmt.Sprintf("plain-%d", g.r.IntN(1000))
	}
	var b strings.Builder
	for range g.r.IntN(12) {
		b.WriteString(runes[g.r.IntN(len(runes))])
	}
	return b.String()
}

func (g gen) strs() []string {
	switch g.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, g.r.IntN(5)+1)
	for i := range out {
		out[i] = g.str()
	}
	return out
}

func (g gen) times() []time.Time {
	switch g.r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []time.Time{}
	}
	out := make([]time.Time, g.r.IntN(4)+1)
	for i := range out {
		out[i] = g.time()
	}
	return out
}

func (g gen) float() float64 {
	switch g.r.IntN(8) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return float64(g.r.IntN(1000) - 500)
	case 3:
		return []float64{1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 123456789e15, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1, 1.5e300}[g.r.IntN(10)]
	}
	return g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(50)-25))
}

func (g gen) value(depth int) any {
	n := 9
	if depth > 3 {
		n = 5
	}
	switch g.r.IntN(n) {
	case 0:
		return nil
	case 1:
		return g.str()
	case 2:
		return g.float()
	case 3:
		return g.r.IntN(2) == 0
	case 4:
		return g.r.IntN(100000) - 50000 // an int: encodes as a number, decodes as float64
	case 5:
		return g.object(depth + 1)
	case 6, 7:
		if g.r.IntN(5) == 0 {
			return []any(nil)
		}
		out := make([]any, g.r.IntN(4))
		for i := range out {
			out[i] = g.value(depth + 1)
		}
		return out
	default:
		return g.str()
	}
}

func (g gen) object(depth int) map[string]any {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return map[string]any{}
	}
	m := map[string]any{}
	for range g.r.IntN(20) + 1 {
		m[g.str()] = g.value(depth)
	}
	return m
}

func (g gen) enrollment() *engine.Enrollment {
	if g.r.IntN(15) == 0 {
		return nil
	}
	return &engine.Enrollment{
		ID: g.str(), Sequence: g.str(), Version: g.str(), Step: g.str(),
		Status:    engine.EnrollmentStatus([]string{"active", "paused", "completed", "exited", "", "x<y"}[g.r.IntN(6)]),
		NextRunAt: g.time(), WaitingFor: g.str(), StartedAt: g.time(), EndedAt: g.time(), Reason: g.str(),
		Sent: g.strs(), Opened: g.strs(), Clicked: g.strs(), SentAt: g.times(),
		PausedLeft: time.Duration(g.r.Int64N(1<<40) - 1<<39),
	}
}

func (g gen) lead() *engine.Lead {
	l := &engine.Lead{
		Key: g.str(), Email: g.str(), Traits: g.object(0),
		Status: engine.LeadStatus([]string{"active", "unsubscribed", "bounced", "", "é"}[g.r.IntN(5)]),
		Owner:  g.str(), Score: engine.Score{Value: g.float(), At: g.time()}, Armed: g.r.IntN(2) == 0,
		Crossings: g.r.IntN(3) - 1, Sends: g.times(), CreatedAt: g.time(), UpdatedAt: g.time(), NextRunAt: g.time(),
		RecentEvents: g.strs(), RecentNext: g.r.IntN(9), TickFailures: g.r.IntN(3),
	}
	if g.r.IntN(2) == 0 {
		l.Escalation = &engine.Escalation{ID: g.str(), Rep: g.str(), At: g.time(), Attempt: g.r.IntN(4),
			Tried: g.strs(), AckedBy: g.str(), AckedAt: g.time(), AckDueAt: g.time()}
	}
	switch g.r.IntN(4) {
	case 0:
	case 1:
		l.Enrollments = []*engine.Enrollment{}
	default:
		for range g.r.IntN(5) + 1 {
			l.Enrollments = append(l.Enrollments, g.enrollment())
		}
	}
	if g.r.IntN(2) == 0 {
		for range g.r.IntN(3) {
			l.RuleUse = append(l.RuleUse, engine.RuleUse{Rule: g.str(), PeriodStart: g.time(), Points: g.float()})
		}
	}
	return l
}

func TestLeadCodecRandom(t *testing.T) {
	t.Parallel()
	g := gen{rand.New(rand.NewPCG(1, 2))}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		checkLead(t, g.lead())
	}
	checkLead(t, &engine.Lead{})
	checkLead(t, engine.NewLead("k", time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)))
	checkLead(t, nil)
}

// TestLeadCodecExamples runs the example scenarios' events through the
// engine with the example content and checks every lead state on the way.
func TestLeadCodecExamples(t *testing.T) {
	t.Parallel()
	const dir = "../../examples"
	b, err := sequences.Load(dir)
	require.NoError(t, err)
	eng, err := engine.New(b.Content)
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(dir, "scenarios", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	checked := 0
	for _, file := range files {
		sc, err := simulate.ParseFile(file)
		require.NoError(t, err)
		leads := map[string]*engine.Lead{}
		for _, sl := range sc.Leads {
			l := engine.NewLead(sl.ID, sc.Start)
			l.Email, l.Traits = sl.Email, sl.Traits
			leads[sl.ID] = l
		}
		desk := &engine.Desk{Reps: map[string]*engine.RepLoad{}}
		apply := func(l *engine.Lead, in engine.Input) {
			in.Desk = desk
			if _, err := eng.Apply(l, in); err != nil {
				return
			}
			checkLead(t, l)
			checked++
		}
		// Fire timers due before now, in order, lead by lead.
		tick := func(now time.Time) {
			for _, l := range leads {
				for i := 0; i < 50 && !l.NextRunAt.IsZero() && l.NextRunAt.Before(now); i++ {
					apply(l, engine.Input{Now: l.NextRunAt})
				}
			}
		}
		for _, ev := range sc.Events {
			tick(ev.At)
			l := leads[ev.Lead]
			if l == nil {
				l = engine.NewLead(ev.Lead, ev.At)
				leads[ev.Lead] = l
			}
			apply(l, engine.Input{Now: ev.At, Event: &engine.Event{ID: fmt.Sprintf("e%d", ev.Index), Type: ev.Type,
				Lead: ev.Lead, Time: ev.At, Email: ev.Email, Traits: ev.Traits, Properties: ev.Properties, Machine: ev.Machine}})
		}
		tick(sc.Until)
	}
	require.Greater(t, checked, 50)
}

// TestLeadCodecOddDocuments: documents we never write still decode exactly
// as encoding/json decodes them (or fail with its error).
func TestLeadCodecOddDocuments(t *testing.T) {
	t.Parallel()
	for _, doc := range oddDocs {
		checkDecode(t, []byte(doc))
	}
}

var oddDocs = []string{
	``, `null`, `{}`, ` { } `, `[]`, `"x"`, `{"key":"a"} x`, `{"key":"a"}{}`, `{"key":"a",}`, `{"key" "a"}`,
	`{"key":"a","key":"b"}`, `{"Key":"a"}`, `{"KEY":"a","key":"b"}`, `{"k\u0065y":"a"}`, `{"kéy":"a"}`,
	`{"\u212aey":"a"}`, `{"key":null,"email":null,"traits":null,"score":null,"escalation":null,"enrollments":null}`,
	`{"key":1}`, `{"crossings":"1"}`, `{"crossings":1.0}`, `{"crossings":1e2}`, `{"crossings":99999999999999999999}`,
	`{"crossings":-0}`, `{"crossings":01}`, `{"score":{"value":1e400}}`, `{"score":{"value":-}}`, `{"score":{"value":.5}}`,
	`{"score":{"value":1.}}`, `{"score":{"value":1e}}`, `{"score":{"value":"1"}}`, `{"score":{"value":1,"At":"2026-01-01T00:00:00Z"}}`,
	`{"score":{"value":1,"at":"2026-01-01T00:00:00+01:00"}}`, `{"score":{"value":1,"at":"2026-01-01"}}`,
	`{"score":{"value":1,"at":"2026-01-01T00:00:00.123456789123Z"}}`, `{"score":{"value":1,"at":"2026-01-01T24:00:00Z"}}`,
	`{"score":{"value":1,"at":"2026-01-01T00:00:00+24:00"}}`, `{"score":{"value":1,"at":"2026-01-01t00:00:00z"}}`,
	`{"score":{"value":1,"at":"2026-01-01T00:00:00\u005a"}}`, `{"score":{"value":1,"at":null}}`, `{"score":{"value":1,"at":5}}`,
	`{"created_at":"0000-01-01T00:00:00Z","updated_at":"9999-12-31T23:59:59.999999999-23:59"}`,
	`{"armed":true}`, `{"armed":tru}`, `{"armed":"true"}`, `{"armed":nul}`,
	`{"traits":{}}`, `{"traits":[]}`, `{"traits":{"a":1,"a":"x"}}`, `{"traits":{"a":{"b":1},"a":{"c":2}}}`,
	`{"traits":{"\ud800":"\udc00x","é\u00e9":"\u2028","<":"\"\\\/\b\f\n\r\t"}}`, `{"traits":{"a":"\x"}}`,
	`{"traits":{"a":"\u12"}}`, "{\"traits\":{\"a\":\"\xff\xfe\"}}", "{\"traits\":{\"a\":\"\x01\"}}",
	`{"traits":{"a":[[],{},[[null]],-0.0,1E+2,1e-400]}}`, `{"traits":{"a":1e400}}`, `{"traits":{"a":[1,]}}`,
	`{"enrollments":[]}`, `{"enrollments":[null,{}]}`, `{"enrollments":{}}`, `{"enrollments":[{"id":"x","paused_left":1.5}]}`,
	`{"enrollments":[{"sent":[null,"a"],"sent_at":[null]}]}`, `{"enrollments":[{"Sent":["a"]}]}`,
	`{"rule_use":[null,{"rule":"r","points":2}]}`, `{"sends":[]}`, `{"sends":[""]}`, `{"recent_events":[1]}`,
	`{"escalation":{"tried":[],"attempt":2,"unknown":[1]}}`, `{"escalation":[]}`, `{"unknown":{"a":[1,{"b":"\u0041"}]}}`,
	`{"unknown":{"a":[1,{"b":"\u00"}]}}`, `{"unknown":01}`, `{"unknown":[1 2]}`, `{"status":"x","status":"y"}`,
	"\t\r\n{\t\"key\"\r:\n\"a\"\t}\n", "\ufeff{}",
}

func FuzzDecodeLead(f *testing.F) {
	g := gen{rand.New(rand.NewPCG(3, 4))}
	for range 20 {
		if b, err := json.Marshal(g.lead()); err == nil {
			f.Add(b)
		}
	}
	for _, doc := range oddDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkDecode(t, doc)
		// Whatever decodes also encodes as encoding/json does.
		if l, err := store.DecodeLead(doc); err == nil {
			checkEncode(t, l)
		}
	})
}

func TestEncodeLeadErrors(t *testing.T) {
	t.Parallel()
	base := func() *engine.Lead { return engine.NewLead("k", time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }
	for name, mut := range map[string]func(*engine.Lead){
		"nan":        func(l *engine.Lead) { l.Score.Value = math.NaN() },
		"inf trait":  func(l *engine.Lead) { l.Traits = map[string]any{"a": []any{math.Inf(-1)}} },
		"year 10000": func(l *engine.Lead) { l.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1":    func(l *engine.Lead) { l.Sends = []time.Time{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} },
		"zone 24h":   func(l *engine.Lead) { l.CreatedAt = l.CreatedAt.In(time.FixedZone("", 24*3600)) },
		"zone -25h":  func(l *engine.Lead) { l.CreatedAt = l.CreatedAt.In(time.FixedZone("", -25*3600)) },
		"chan trait": func(l *engine.Lead) { l.Traits = map[string]any{"c": make(chan int)} },
		"other traits": func(l *engine.Lead) {
			l.Traits = map[string]any{"f32": float32(0.1), "u": uint8(3), "s": []string{"<"}, "t": time.Unix(0, 1)}
		},
	} {
		l := base()
		mut(l)
		t.Run(name, func(t *testing.T) { checkEncode(t, l) })
	}
}

// benchLeads are realistic documents: example-like leads of a few sizes.
func benchLeads() map[string]*engine.Lead {
	now := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	small := engine.NewLead("lead-000042", now)
	small.Email = "ada@example.com"
	small.Traits = map[string]any{"first_name": "Ada", "plan": "trial", "seats": 25.0}
	small.Score = engine.Score{Value: 12, At: now}
	small.Enrollments = []*engine.Enrollment{{ID: "lead-000042/trial/1", Sequence: "trial-nurture", Version: "3f9a2c",
		Step: "tips", Status: engine.EnrollmentActive, NextRunAt: now.Add(48 * time.Hour), StartedAt: now,
		Sent: []string{"welcome"}, Opened: []string{"welcome"}, SentAt: []time.Time{now}}}
	small.Sends = []time.Time{now}
	small.NextRunAt = now.Add(48 * time.Hour)
	small.RecentEvents = []string{"evt-1", "evt-2", "evt-3"}
	small.RecentNext = 3

	large := &engine.Lead{
		Key: "lead-000043", Email: "grace@example.com", Status: engine.LeadActive, Owner: "rep-1",
		Traits: map[string]any{"first_name": "Grace", "last_name": "Hopper", "company": "Analytical Engines Ltd",
			"plan": "trial", "timezone": "Europe/London", "seats": 25.0, "tags": []any{"beta", "enterprise"},
			"utm": map[string]any{"source": "newsletter", "campaign": "spring-2026"}, "score_hint": 0.75, "active": true},
		Score: engine.Score{Value: 42.5, At: now}, Crossings: 2,
		Escalation: &engine.Escalation{ID: "esc-lead-000043-2", Rep: "rep-1", At: now, Attempt: 2,
			Tried: []string{"rep-0"}, AckDueAt: now.Add(time.Hour)},
		RuleUse:   []engine.RuleUse{{Rule: "page-views", PeriodStart: now.Add(-time.Hour), Points: 3}},
		Sends:     []time.Time{now.Add(-50 * time.Hour), now.Add(-26 * time.Hour), now},
		CreatedAt: now.Add(-72 * time.Hour), UpdatedAt: now, NextRunAt: now.Add(time.Hour),
	}
	for i := range 8 {
		large.RecentEvents = append(large.RecentEvents, fmt.Sprintf("evt-%08d", i))
	}
	for i, seq := range []string{"trial-onboarding", "webinar-follow-up", "re-engagement"} {
		large.Enrollments = append(large.Enrollments, &engine.Enrollment{ID: fmt.Sprintf("%s/%s/1", large.Key, seq),
			Sequence: seq, Version: "v7", Step: "step-" + seq, Status: engine.EnrollmentActive,
			NextRunAt: now.Add(time.Duration(i+1) * time.Hour), StartedAt: now.Add(-48 * time.Hour),
			Sent: []string{"welcome", "tips"}, Opened: []string{"welcome"}, Clicked: []string{"welcome"},
			SentAt: []time.Time{now.Add(-48 * time.Hour), now.Add(-24 * time.Hour)}})
	}
	large.Enrollments[2].Status, large.Enrollments[2].EndedAt, large.Enrollments[2].Reason =
		engine.EnrollmentCompleted, now.Add(-time.Hour), "completed"
	return map[string]*engine.Lead{"small": small, "large": large}
}

func TestLeadCodecBenchLeads(t *testing.T) {
	t.Parallel()
	for _, l := range benchLeads() {
		checkLead(t, l)
	}
}

func BenchmarkLeadCodec(b *testing.B) {
	leads := benchLeads()
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range leads {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		l := leads[name]
		doc, err := json.Marshal(l)
		require.NoError(b, err)
		b.Run(name+"/encode/encoding_json", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := json.Marshal(l); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/encode/codec", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := store.EncodeLead(l); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode/encoding_json", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if err := json.Unmarshal(doc, new(engine.Lead)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode/codec", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if _, err := store.DecodeLead(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
