package parity_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/simulate"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/testdb"
	"github.com/nurture-oss/nurture/sequences"
)

const examplesDir = "../../examples"

// escalation is one routing of an escalated lead (attempt 1, then one per
// re-route), as the simulator prints it and the runtime records it.
type escalation struct {
	Lead    string
	At      time.Time
	Rep     string
	ID      string
	Attempt int
	// Score is rounded to 2 decimals (the transcript's precision).
	Score  float64
	Reason string
}

// send is one marketing email handed to the outbox.
type send struct {
	Lead     string
	At       time.Time
	Sequence string
	Step     string
	Template string
	SendID   string
}

// line is one timeline entry reduced to what both sides record: the
// instant, the action (an engine effect's Action, or "event" for an
// applied event) and, on event lines, the event id.
type line struct {
	At     time.Time
	Action string
	Event  string
}

func (l line) String() string {
	s := l.At.Format(time.RFC3339) + " " + l.Action
	if l.Event != "" {
		s += " " + l.Event
	}
	return s
}

// outcome is what one side did with the scenario.
type outcome struct {
	escalations []escalation
	sends       []send
	timeline    map[string][]string // lead -> lines in the order they happened
	deadLetters []string            // event ids
}

var (
	actionEscalated = engine.Escalated{}.Action()
	actionEmailSent = engine.SendEmail{}.Action()
)

// round2 is the transcript's rounding of scores.
func round2(f float64) float64 { return math.Round(f*100) / 100 }

// simulateScenario runs sc through the simulator and collects its
// transcript.
func simulateScenario(t *testing.T, content *engine.Content, sc *simulate.Scenario) outcome {
	t.Helper()
	out := outcome{timeline: map[string][]string{}}
	var lines []struct {
		lead string
		l    line
	}
	_, err := simulate.Run(context.Background(), content, sc, simulate.Options{}, func(e *simulate.Entry) error {
		switch e.Action {
		case actionEscalated:
			require.NotNil(t, e.Score, "escalated line without a score")
			out.escalations = append(out.escalations, escalation{
				Lead: e.Lead, At: e.At.UTC(), Rep: e.Rep, ID: e.ID, Attempt: e.Attempt, Score: *e.Score, Reason: e.Reason,
			})
		case actionEmailSent:
			out.sends = append(out.sends, send{
				Lead: e.Lead, At: e.At.UTC(), Sequence: e.Sequence, Step: e.Step, Template: e.Template, SendID: e.ID,
			})
		}
		switch e.Action {
		case simulate.ActionDuplicate:
			// The runtime drops a duplicate before the engine sees it and
			// records nothing for it; neither does the comparison.
		case simulate.ActionDeadLetter:
			out.deadLetters = append(out.deadLetters, e.ID)
		case simulate.ActionEvent:
			lines = append(lines, struct {
				lead string
				l    line
			}{e.Lead, line{At: e.At.UTC(), Action: e.Action, Event: e.ID}})
		default:
			lines = append(lines, struct {
				lead string
				l    line
			}{e.Lead, line{At: e.At.UTC(), Action: e.Action}})
		}
		return nil
	})
	require.NoError(t, err, "simulate %s", sc.Path)
	slices.Sort(out.deadLetters)
	// The simulator prints the line of an event the engine refused; the
	// runtime dead-letters such an event and keeps no timeline entry.
	for _, x := range lines {
		if x.l.Action == simulate.ActionEvent && slices.Contains(out.deadLetters, x.l.Event) {
			continue
		}
		out.timeline[x.lead] = append(out.timeline[x.lead], x.l.String())
	}
	return out
}

// clock is the runtime's settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// runtime is the real runtime on its own database and NATS server.
type runtime struct {
	st    *postgres.Store
	db    *pgx.Conn // reads leads.next_run_at, the column the sweep claims on
	pub   *nats.Publisher
	run   *runner.Runner
	clock *clock
}

func startRuntime(t *testing.T, content *engine.Content, channels []runner.Channel) *runtime {
	t.Helper()
	ctx := context.Background()
	dbURL := testdb.New(t)
	st, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))
	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })

	srv := natstest.Start(t)
	conn := natstest.Connect(t, srv.URL, nats.Options{AckWait: 30 * time.Second, FetchWait: 200 * time.Millisecond})
	cons, err := conn.Consumer(ctx)
	require.NoError(t, err)

	clk := &clock{}
	r, err := runner.New(runner.Config{
		Store:      st,
		Content:    content,
		Consumer:   runner.AdaptConsumer[*nats.Msg](cons),
		Channels:   channels,
		Registerer: prometheus.NewRegistry(),
		Now:        clk.Now,
		Jitter:     func() float64 { return 0.5 },
		BatchSize:  100,
		// One transaction at a time: the order of inputs is the test's.
		IngestParallel: 1,
		SweepParallel:  1,
	})
	require.NoError(t, err)
	return &runtime{st: st, db: db, pub: conn.Publisher("parity"), run: r, clock: clk}
}

// setDesk gives the runtime the scenario's initial desk: reps away (through
// the store's API, as the HTTP API does) and open escalations.
func (rt *runtime) setDesk(t *testing.T, reps simulate.Reps) {
	t.Helper()
	ctx := context.Background()
	for _, id := range reps.Away {
		require.NoError(t, rt.st.SetRepAway(ctx, id, true))
	}
	if len(reps.Open) == 0 {
		return
	}
	require.NoError(t, rt.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		d, err := tx.Desk(ctx, true)
		if err != nil {
			return err
		}
		for _, id := range slices.Sorted(maps.Keys(reps.Open)) {
			if d.Reps[id] == nil {
				d.Reps[id] = &engine.RepLoad{}
			}
			d.Reps[id].Open = reps.Open[id]
		}
		return tx.SaveDesk(ctx, d)
	}))
}

// cloudEventData is the data of a lead event (DESIGN.md §3.1).
type cloudEventData struct {
	Email      string         `json:"email,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
	Machine    bool           `json:"machine,omitempty"`
}

// publish sends ev to the LEADS stream as an upstream system would: a
// structured CloudEvent on leads.<type> with the event id as Nats-Msg-Id.
func (rt *runtime) publish(t *testing.T, ev simulate.Event, email string, traits map[string]any) {
	t.Helper()
	data, err := json.Marshal(cloudEventData{Email: email, Traits: traits, Properties: ev.Properties, Machine: ev.Machine})
	require.NoError(t, err)
	body, err := json.Marshal(map[string]any{
		"specversion":     "1.0",
		"id":              ev.ID,
		"source":          "parity-test",
		"type":            ev.Type,
		"subject":         ev.Lead,
		"time":            ev.At.UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"data":            json.RawMessage(data),
	})
	require.NoError(t, err)
	require.NoError(t, rt.pub.Publish(context.Background(), "leads."+ev.Type, body, ev.ID))
}

// ingestOne runs the ingest step until the published event was fetched.
func (rt *runtime) ingestOne(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		n, err := rt.run.IngestOnce(ctx)
		require.NoError(t, err)
		if n > 0 {
			require.Equal(t, 1, n, "one event was published")
			return
		}
	}
}

// ingestMaybe runs the ingest step once, whether or not a message comes.
func (rt *runtime) ingestMaybe(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := rt.run.IngestOnce(ctx)
	require.NoError(t, err)
}

// nextDue is the earliest pending timer in the store, if any.
func (rt *runtime) nextDue(t *testing.T) (time.Time, bool) {
	t.Helper()
	var next *time.Time
	require.NoError(t, rt.db.QueryRow(context.Background(), `SELECT min(next_run_at) FROM leads`).Scan(&next))
	if next == nil {
		return time.Time{}, false
	}
	return next.UTC(), true
}

// play drives the runtime through sc on the fake clock, in the
// simulator's order: inputs by time; at one instant the scripted events
// first (in file order), then the due timers. Each event is published to
// JetStream and ingested at its own time; between events the runner's own
// sweep fires at every instant the store says a lead is due, until Until.
//
// A scenario lead exists in the simulator from Start with its email and
// traits. Here the lead is created by its first event, which carries the
// lead's email (unless the event names one) and traits (merged under the
// event's own, as the engine merges them): the engine merges an event's
// traits before it enrolls or scores anything, and a lead without events
// has no timers, so the state the engine sees is the same. (The lead's
// CreatedAt differs: Start in the simulator, the first event here; the
// engine never reads it.)
func (rt *runtime) play(t *testing.T, sc *simulate.Scenario) {
	t.Helper()
	ctx := context.Background()
	leads := map[string]simulate.Lead{}
	for _, l := range sc.Leads {
		leads[l.ID] = l
	}
	introduced := map[string]bool{}
	published := map[string]bool{}
	events := sc.Events
	rt.clock.Set(sc.Start)
	for steps := 0; ; steps++ {
		require.Less(t, steps, 100_000, "the runtime does not reach the end of the scenario")
		next, due := rt.nextDue(t)
		if due && next.Before(rt.clock.Now()) {
			next = rt.clock.Now() // overdue: fire now, never in the past (as the simulator)
		}
		switch {
		case len(events) > 0 && (!due || !events[0].At.After(next)):
			ev := events[0]
			events = events[1:]
			email, traits := ev.Email, ev.Traits
			if !introduced[ev.Lead] {
				introduced[ev.Lead] = true
				l := leads[ev.Lead]
				if email == "" {
					email = l.Email
				}
				if len(l.Traits) > 0 {
					merged := maps.Clone(l.Traits)
					maps.Copy(merged, ev.Traits)
					traits = merged
				}
			}
			rt.clock.Set(ev.At)
			rt.publish(t, ev, email, traits)
			if published[ev.ID] {
				// A replay of an id already published: JetStream drops it
				// within its duplicate window (the seconds this test
				// runs); past the window the runner's processed ids
				// would. Either way nothing may come of it.
				rt.ingestMaybe(t)
				continue
			}
			published[ev.ID] = true
			rt.ingestOne(t)
		case due && next.Before(sc.Until):
			rt.clock.Set(next)
			n, err := rt.run.SweepOnce(ctx, next)
			require.NoError(t, err)
			require.Positive(t, n, "a lead is due at %s but the sweep ticked none", next.Format(time.RFC3339))
		default:
			return
		}
	}
}

// outcome reads back what the runtime recorded for sc's leads.
func (rt *runtime) outcome(t *testing.T, sc *simulate.Scenario) outcome {
	t.Helper()
	ctx := context.Background()
	out := outcome{timeline: map[string][]string{}}
	for _, l := range sc.Leads {
		hs, err := rt.st.History(ctx, l.ID, 0)
		require.NoError(t, err)
		for _, h := range hs {
			at := h.At.UTC()
			switch h.Kind {
			case "delivery": // outbox outcomes; nothing is dispatched here
				continue
			case "event":
				out.timeline[l.ID] = append(out.timeline[l.ID], line{At: at, Action: simulate.ActionEvent, Event: h.EventID}.String())
				continue
			case actionEscalated:
				var e engine.Escalated
				require.NoError(t, json.Unmarshal(h.Data, &e))
				out.escalations = append(out.escalations, escalation{
					Lead: l.ID, At: at, Rep: e.Rep, ID: e.ID, Attempt: e.Attempt, Score: round2(e.Score), Reason: e.Reason,
				})
			case actionEmailSent:
				var s engine.SendEmail
				require.NoError(t, json.Unmarshal(h.Data, &s))
				out.sends = append(out.sends, send{
					Lead: l.ID, At: at, Sequence: s.Sequence, Step: s.Step, Template: s.Template, SendID: s.SendID,
				})
			}
			out.timeline[l.ID] = append(out.timeline[l.ID], line{At: at, Action: h.Kind}.String())
		}
	}
	dls, err := rt.st.DeadLetters(ctx, 10_000)
	require.NoError(t, err)
	for _, dl := range dls {
		out.deadLetters = append(out.deadLetters, dl.EventID)
	}
	slices.Sort(out.deadLetters)
	return out
}

// sortEscalations and sortSends put both sides in one order (time, lead,
// id), since the runtime's records are read lead by lead.
func sortEscalations(es []escalation) {
	slices.SortStableFunc(es, func(a, b escalation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Lead, b.Lead), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Attempt, b.Attempt))
	})
}

func sortSends(ss []send) {
	slices.SortStableFunc(ss, func(a, b send) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Lead, b.Lead), cmp.Compare(a.SendID, b.SendID))
	})
}

// outboxKeys returns the dedupe keys of the outbox items of kind.
func (rt *runtime) outboxKeys(t *testing.T, kind string) []string {
	t.Helper()
	items, err := rt.st.ListOutbox(context.Background(), store.OutboxFilter{Kind: kind, Limit: 100_000})
	require.NoError(t, err)
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.DedupeKey
	}
	slices.Sort(keys)
	return keys
}

// channelsOf lists the escalation channels the content's notify section
// declares, as `nurture serve` enables them when their URLs are configured.
func channelsOf(n sequences.Notify) []runner.Channel {
	var chs []runner.Channel
	for _, c := range n.Slack {
		chs = append(chs, runner.Channel{Kind: store.KindNotifySlack, Name: c.Name})
	}
	for _, c := range n.Webhooks {
		chs = append(chs, runner.Channel{Kind: store.KindNotifyWebhook, Name: c.Name})
	}
	if n.EmailRep {
		chs = append(chs, runner.Channel{Kind: store.KindNotifyEmail, Name: "email"})
	}
	return chs
}

// TestEscalationScenarioMatchesRuntime: `nurture simulate` on the example
// content and examples/scenarios/escalation.yaml shows the same
// escalations (same lead, rep, instant, escalation id and attempt) as the
// runtime produces from the same events published to NATS.
func TestEscalationScenarioMatchesRuntime(t *testing.T) {
	t.Parallel()
	checkScenario(t, "escalation.yaml", func(t *testing.T, sim outcome) {
		require.NotEmpty(t, sim.escalations, "the scenario escalates nobody: the comparison would prove nothing")
		require.True(t, slices.ContainsFunc(sim.escalations, func(e escalation) bool { return e.Attempt > 1 }),
			"the scenario has no re-route: the timer path of escalation would go unchecked")
	})
}

// TestExampleScenariosMatchRuntime holds every other example scenario to
// the same comparison.
func TestExampleScenariosMatchRuntime(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "scenarios", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, p := range paths {
		name := filepath.Base(p)
		if name == "escalation.yaml" {
			continue // TestEscalationScenarioMatchesRuntime
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkScenario(t, name, nil)
		})
	}
}

// checkScenario runs examples/scenarios/name through the simulator and the
// runtime and compares escalations, their notifications, emails and every
// lead's timeline. precond checks the simulator's side first (that the
// scenario exercises what the test is about).
func checkScenario(t *testing.T, name string, precond func(*testing.T, outcome)) {
	t.Helper()
	bundle, err := sequences.Load(examplesDir)
	require.NoError(t, err)
	sc, err := simulate.ParseFile(filepath.Join(examplesDir, "scenarios", name))
	require.NoError(t, err)

	sim := simulateScenario(t, bundle.Content, sc)
	if precond != nil {
		precond(t, sim)
	}

	channels := channelsOf(bundle.Notify)
	require.NotEmpty(t, channels, "the example content declares notification channels")
	rt := startRuntime(t, bundle.Content, channels)
	rt.setDesk(t, sc.Reps)
	rt.play(t, sc)
	got := rt.outcome(t, sc)

	lines := 0
	for _, ls := range sim.timeline {
		lines += len(ls)
	}
	require.NotZero(t, lines, "the simulator's timeline is empty")
	t.Logf("%s: simulator: %d timeline lines, %d emails, %d escalations; runtime: %d emails, %d escalations",
		name, lines, len(sim.sends), len(sim.escalations), len(got.sends), len(got.escalations))

	sortEscalations(sim.escalations)
	sortEscalations(got.escalations)
	sortSends(sim.sends)
	sortSends(got.sends)

	t.Run("escalations", func(t *testing.T) {
		for _, e := range got.escalations {
			t.Logf("runtime: %s %s -> %s attempt %d (%s) score %.2f", e.At.Format(time.RFC3339), e.Lead, e.Rep, e.Attempt, e.ID, e.Score)
		}
		require.Equal(t, sim.escalations, got.escalations,
			"the runtime must escalate the same leads to the same reps at the same instants, with the same ids and attempts")
	})

	t.Run("notifications", func(t *testing.T) {
		// Each escalation the simulator shows is one outbox item per
		// channel and one lead.escalated event, keyed for dedupe.
		var notify, events []string
		for _, e := range sim.escalations {
			for _, ch := range channels {
				notify = append(notify, fmt.Sprintf("%s/%d/%s", e.ID, e.Attempt, ch.Name))
			}
			events = append(events, "event/"+runner.SubjectEscalated+"/"+
				runner.EscalationEventID(engine.Escalated{ID: e.ID, Attempt: e.Attempt}))
		}
		slices.Sort(notify)
		var gotNotify []string
		for _, kind := range []string{store.KindNotifySlack, store.KindNotifyWebhook, store.KindNotifyEmail} {
			gotNotify = append(gotNotify, rt.outboxKeys(t, kind)...)
		}
		slices.Sort(gotNotify)
		require.Equal(t, notify, gotNotify)
		// The runtime also echoes engagement events (email.opened, …)
		// under nurture.>; only lead.escalated is compared here.
		var gotEvents []string
		for _, k := range rt.outboxKeys(t, store.KindEvent) {
			if strings.HasPrefix(k, "event/"+runner.SubjectEscalated+"/") {
				gotEvents = append(gotEvents, k)
			}
		}
		slices.Sort(events)
		require.Equal(t, events, gotEvents)
	})

	t.Run("emails", func(t *testing.T) {
		require.NotEmpty(t, sim.sends, "the scenario sends no email")
		require.Equal(t, sim.sends, got.sends,
			"the runtime must send the same steps to the same leads at the same instants")
		want := make([]string, len(sim.sends))
		for i, s := range sim.sends {
			want[i] = s.SendID
		}
		slices.Sort(want)
		require.Equal(t, want, rt.outboxKeys(t, store.KindEmail), "one outbox email per send")
	})

	t.Run("timeline", func(t *testing.T) {
		// Every lead's whole timeline: events applied and every effect,
		// at the same instants and in the same order.
		require.Equal(t, sim.timeline, got.timeline)
		require.Equal(t, sim.deadLetters, got.deadLetters)
	})
}
