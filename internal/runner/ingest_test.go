package runner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

func TestIngestBatchAppliesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	const leads = 150
	var evs []*engine.Event
	for i := range leads {
		evs = append(evs, event("", "trial.started", fmt.Sprintf("lead-%d", i)))
	}
	b.publish(t, evs...)
	drain(t, r, leads)

	for i := range leads {
		key := fmt.Sprintf("lead-%d", i)
		l := b.lead(t, key)
		require.Equal(t, key+"@example.com", l.Email)
		require.Len(t, l.Enrollments, 1)
		require.Equal(t, "pause", l.Enrollments[0].Step)
		require.Equal(t, t0.Add(48*time.Hour), l.NextRunAt.UTC())
		require.Len(t, b.history(t, key, "event"), 1)
		require.Len(t, b.history(t, key, "enrolled"), 1)
		mails := b.outbox(t, store.KindEmail, key)
		require.Len(t, mails, 1)
		p := decode[outbox.EmailPayload](t, mails[0].Payload)
		require.Equal(t, mails[0].DedupeKey, p.Send.SendID)
		require.Equal(t, "welcome", p.Send.Step)
		require.Equal(t, key+"@example.com", p.To)
		require.Equal(t, "L"+key, p.Traits["first_name"])
		require.Equal(t, store.StatusPending, mails[0].Status)
	}
	// Everything was acked: nothing comes back.
	n, err := r.IngestOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestSameEventTwiceAppliedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	ev := event("view-1", "page.viewed", "lead-1")
	// Twice within the duplicate window: JetStream drops the copy.
	b.publish(t, ev)
	b.publish(t, ev)
	// Republished under another Nats-Msg-Id (as after the window): the
	// stream keeps it; the processed-ids table must stop it.
	data, err := nats.EventOut(ev, "test")
	require.NoError(t, err)
	b.publishRaw(t, data.Subject, data.Data, "other-msg-id")
	// And twice in one batch.
	b.publishRaw(t, data.Subject, data.Data, "other-msg-id-2")
	b.publishRaw(t, data.Subject, data.Data, "other-msg-id-3")
	drain(t, r, 4)

	l := b.lead(t, "lead-1")
	require.InDelta(t, 10, l.Score.Value, 0.001)
	require.Len(t, b.history(t, "lead-1", "event"), 1)
	require.Len(t, b.history(t, "lead-1", "score.changed"), 1)
}

// ackless wraps a consumer whose messages ignore Ack and Term: the worker
// "crashes" after commit, before the acks reach the server.
type ackless struct{ c runner.Consumer }

type acklessMsg struct{ runner.Msg }

func (acklessMsg) Ack() error  { return nil }
func (acklessMsg) Term() error { return nil }

func (a ackless) Fetch(ctx context.Context, max int) ([]runner.Msg, error) {
	ms, err := a.c.Fetch(ctx, max)
	for i := range ms {
		ms[i] = acklessMsg{ms[i]}
	}
	return ms, err
}

func TestRedeliveryAfterCrashAppliedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	evs := []*engine.Event{
		event("c-1", "trial.started", "lead-1"),
		event("c-2", "page.viewed", "lead-1"),
		event("c-3", "page.viewed", "lead-2"),
	}
	b.publish(t, evs...)

	// Crash 1: fetched, never processed, never acked.
	cons, err := b.conn.Consumer(ctx)
	require.NoError(t, err)
	got, err := cons.Fetch(ctx, 10)
	require.NoError(t, err)
	require.Len(t, got, 3)

	// Crash 2: a worker commits the batch but dies before acking.
	crashing := b.runner(t, func(c *runner.Config) { c.Consumer = ackless{c.Consumer} })
	drain(t, crashing, 3) // redelivered after AckWait (2s)

	// The restarted worker gets them a third time and must skip them.
	r := b.runner(t)
	drain(t, r, 3)

	l1, l2 := b.lead(t, "lead-1"), b.lead(t, "lead-2")
	require.InDelta(t, 10, l1.Score.Value, 0.001)
	require.InDelta(t, 10, l2.Score.Value, 0.001)
	require.Len(t, l1.Enrollments, 1)
	require.Len(t, b.history(t, "lead-1", "event"), 2)
	require.Len(t, b.outbox(t, store.KindEmail, "lead-1"), 1)
	n, err := r.IngestOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "everything acked now")
}

func TestBadInputDeadLetteredWorkerGoesOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	env := func(id, typ, subject string) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"t","type":%q,"subject":%q,"data":{}}`, id, typ, subject))
	}
	huge := []byte(`{"specversion":"1.0","id":"big","source":"t","type":"page.viewed","subject":"lead-x","data":{"properties":{"blob":"` +
		strings.Repeat("x", 300<<10) + `"}}}`)
	cases := []struct {
		name, subject string
		data          []byte
		reason        string // substring of the dead-letter reason
	}{
		{"malformed JSON", "leads.x", []byte(`{"specversion":"1.0","id":`), "not a JSON CloudEvent"},
		{"missing id", "leads.page.viewed", env("", "page.viewed", "lead-x"), "missing id"},
		{"missing type", "leads.x", env("no-type", "", "lead-x"), "missing type"},
		{"missing subject", "leads.page.viewed", env("no-subject", "page.viewed", ""), "missing subject"},
		{"oversized", "leads.page.viewed", huge, "byte limit"},
		{"bad data", "leads.page.viewed", []byte(`{"specversion":"1.0","id":"bd","source":"t","type":"page.viewed","subject":"lead-x","data":"nope"}`), "data"},
	}
	for i, c := range cases {
		b.publishRaw(t, c.subject, c.data, fmt.Sprintf("bad-%d", i))
	}
	// An event type nothing listens to, and a good event after the bad ones.
	b.publish(t, event("unknown-1", "webinar.attended", "lead-u"), event("good-1", "page.viewed", "lead-g"))
	drain(t, r, len(cases)+2)

	dls := b.deadLetters(t)
	require.Len(t, dls, len(cases))
	for _, c := range cases {
		found := false
		for _, dl := range dls {
			if strings.Contains(dl.Reason, c.reason) && dl.Subject == c.subject {
				found = true
				require.NotEmpty(t, dl.Payload)
				require.LessOrEqual(t, len(dl.Payload), 64<<10)
			}
		}
		require.True(t, found, "%s: no dead letter with %q in %+v", c.name, c.reason, dls)
	}
	// The unknown type is a clean no-op: recorded on the timeline, no effects.
	require.Len(t, b.history(t, "lead-u", "event"), 1)
	require.Empty(t, b.outbox(t, "", "lead-u"))
	// The good event applied.
	require.InDelta(t, 10, b.lead(t, "lead-g").Score.Value, 0.001)
	// Nothing is redelivered: bad ones were termed, good ones acked.
	n, err := r.IngestOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestTransientStoreErrorNaksThenSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fl := &flaky{Store: b.st}
	fl.fail.Store(2)
	r := b.runner(t, func(c *runner.Config) { c.Store = fl; c.NakDelay = 50 * time.Millisecond })
	b.publish(t, event("t-1", "page.viewed", "lead-1"), event("t-2", "page.viewed", "lead-1"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var fails int
	for b.countEvents(t, "lead-1") < 2 {
		_, err := r.IngestOnce(ctx)
		if err != nil {
			require.ErrorIs(t, err, store.ErrTransient)
			fails++
		}
		require.NoError(t, ctx.Err())
	}
	require.Equal(t, 2, fails)
	require.InDelta(t, 20, b.lead(t, "lead-1").Score.Value, 0.001)
	require.Empty(t, b.deadLetters(t))
}

func (b *bundle) countEvents(t *testing.T, lead string) int {
	t.Helper()
	hs, err := b.st.History(context.Background(), lead, 1000)
	require.NoError(t, err)
	n := 0
	for _, h := range hs {
		if h.Kind == "event" {
			n++
		}
	}
	return n
}

// TestEventTheDatabaseRefuses: PostgreSQL cannot hold \u0000 in text or
// jsonb, so the runner rejects such an event before its batch transaction:
// it is dead-lettered, no lead is created for it, and the rest apply.
func TestEventTheDatabaseRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	bad := event("nul-1", "page.viewed", "lead-bad")
	bad.Traits = map[string]any{"name": "a\u0000b"}
	b.publish(t, event("ok-1", "page.viewed", "lead-1"), bad, event("ok-2", "page.viewed", "lead-2"))
	drain(t, r, 3)

	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, "nul-1", dls[0].EventID)
	require.Contains(t, dls[0].Reason, "NUL")
	_, err := b.st.Lead(context.Background(), "lead-bad")
	require.ErrorIs(t, err, store.ErrNotFound, "no empty lead row for a dead-lettered event")
	require.InDelta(t, 10, b.lead(t, "lead-1").Score.Value, 0.001)
	require.InDelta(t, 10, b.lead(t, "lead-2").Score.Value, 0.001)
	n, err := r.IngestOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to redeliver")
}
