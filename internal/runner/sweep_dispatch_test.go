package runner_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

func TestSweepFiresDueLeadsNeverEarly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	ctx := context.Background()
	// lead-a enrolls at t0, lead-b an hour later.
	b.publish(t, event("s-a", "trial.started", "lead-a"))
	drain(t, r, 1)
	b.clock.Set(t0.Add(time.Hour))
	b.publish(t, event("s-b", "trial.started", "lead-b"))
	drain(t, r, 1)

	n, err := r.SweepOnce(ctx, t0.Add(48*time.Hour-time.Second))
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due a second early")
	require.Len(t, b.outbox(t, store.KindEmail, "lead-a"), 1)

	n, err = r.SweepOnce(ctx, t0.Add(48*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n, "only lead-a is due")
	mails := b.outbox(t, store.KindEmail, "lead-a")
	require.Len(t, mails, 2)
	require.Len(t, b.outbox(t, store.KindEmail, "lead-b"), 1)

	// Firing again at the same time does nothing (the step fired once).
	n, err = r.SweepOnce(ctx, t0.Add(48*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)

	n, err = r.SweepOnce(ctx, t0.Add(72*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, b.outbox(t, store.KindEmail, "lead-b"), 2)
	require.Len(t, b.outbox(t, store.KindEmail, "lead-a"), 2)
}

func TestSweepLoopsOverFullBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.SweepBatch = 7 })
	const leads = 40
	var evs []*engine.Event
	for i := range leads {
		evs = append(evs, event("", "trial.started", fmt.Sprintf("lead-%d", i)))
	}
	b.publish(t, evs...)
	drain(t, r, leads)
	n, err := r.SweepOnce(context.Background(), t0.Add(49*time.Hour))
	require.NoError(t, err)
	require.Equal(t, leads, n)
	for i := range leads {
		require.Len(t, b.outbox(t, store.KindEmail, fmt.Sprintf("lead-%d", i)), 2)
	}
}

// enqueueEmails ingests trial.started for the leads so each has one
// pending welcome email.
func enqueueEmails(t *testing.T, b *bundle, r *runner.Runner, leads ...string) {
	t.Helper()
	var evs []*engine.Event
	for _, l := range leads {
		evs = append(evs, event("", "trial.started", l))
	}
	b.publish(t, evs...)
	drain(t, r, len(leads))
}

func dispatchAll(t *testing.T, r *runner.Runner, now time.Time) int {
	t.Helper()
	total := 0
	for {
		n, err := r.DispatchOnce(context.Background(), now)
		require.NoError(t, err)
		total += n
		if n == 0 {
			return total
		}
	}
}

func TestDispatchOutcomes(t *testing.T) {
	t.Parallel()
	errTemp := errors.New("421 try again later")
	cases := []struct {
		name       string
		fault      error
		at         time.Duration // dispatch time after t0
		wantStatus string
		wantClass  string
		suppressed bool
	}{
		{"delivered", nil, 0, store.StatusSent, "sent", false},
		{"transient", errTemp, 0, store.StatusRetry, "retry", false},
		{"transient past give-up", errTemp, 25 * time.Hour, store.StatusFailed, "gave_up", false},
		{"permanent", fmt.Errorf("550 no such user: %w", outbox.ErrPermanent), 0, store.StatusFailed, "failed", false},
		{"hard bounce", &outbox.SuppressError{Email: "lead-1@example.com", Reason: "bounced", Err: errors.New("550 5.1.1")}, 0, store.StatusFailed, "failed", true},
		{"unknown", fmt.Errorf("connection lost after DATA: %w", outbox.ErrUnknown), 0, store.StatusUnknown, "unknown", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.mail.fault = func(store.OutboxItem, int) error { return c.fault }
			pub := &countingPub{Publisher: b.pub}
			r := b.runner(t, func(c *runner.Config) { c.Publisher = pub })
			enqueueEmails(t, b, r, "lead-1")
			now := t0.Add(c.at)
			require.GreaterOrEqual(t, dispatchAll(t, r, now), 1)
			mails := b.outbox(t, store.KindEmail, "lead-1")
			require.Len(t, mails, 1)
			require.Equal(t, c.wantStatus, mails[0].Status)
			require.Equal(t, 1, b.mail.count(mails[0].DedupeKey))
			if c.fault != nil {
				require.Contains(t, mails[0].LastError, c.fault.Error())
			}
			if c.wantStatus == store.StatusRetry {
				// First retry: RetryBase (10s) with jitter 0.5 → 7.5s.
				require.Equal(t, now.Add(7500*time.Millisecond), mails[0].NextAttemptAt.UTC())
				require.Zero(t, dispatchAll(t, r, now.Add(7*time.Second)), "not before the backoff")
				b.mail.fault = nil
				require.GreaterOrEqual(t, dispatchAll(t, r, now.Add(8*time.Second)), 1)
				require.Equal(t, store.StatusSent, b.outbox(t, store.KindEmail, "lead-1")[0].Status)
				require.Equal(t, 2, b.mail.count(mails[0].DedupeKey))
			}
			deliveries := b.history(t, "lead-1", "delivery")
			require.NotEmpty(t, deliveries)
			first := decode[map[string]any](t, deliveries[len(deliveries)-1].Data)
			if first["outcome"] != c.wantClass { // history order is the store's; find ours
				found := false
				for _, h := range deliveries {
					if decode[map[string]any](t, h.Data)["outcome"] == c.wantClass {
						found = true
					}
				}
				require.True(t, found, "no delivery entry with outcome %s", c.wantClass)
			}
			// The email.sent event (its id is the send id) is published
			// once, and only for an email that went out.
			sentEvents := pub.count(runner.SubjectEmailSent, mails[0].DedupeKey)
			if c.wantStatus == store.StatusSent || c.wantStatus == store.StatusRetry {
				require.Equal(t, 1, sentEvents, "email.sent published once")
			} else {
				require.Zero(t, sentEvents)
			}
			require.Empty(t, b.outbox(t, store.KindEvent, "lead-1"), "published events need no outbox row")
			if c.suppressed {
				// A second lead with the same address is suppressed at claim.
				ev := event("", "trial.started", "lead-2")
				ev.Email = "LEAD-1@example.com"
				b.publish(t, ev)
				drain(t, r, 1)
				b.mail.fault = nil
				require.GreaterOrEqual(t, dispatchAll(t, r, now), 1)
				m2 := b.outbox(t, store.KindEmail, "lead-2")
				require.Len(t, m2, 1)
				require.Equal(t, store.StatusSuppressed, m2[0].Status)
				require.Zero(t, b.mail.count(m2[0].DedupeKey), "never handed to the mailer")
			}
		})
	}
}

func TestDispatchSkipsUnsubscribedLead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	enqueueEmails(t, b, r, "lead-1")
	// The unsubscribe is applied after the email was queued, before it is sent.
	b.publish(t, event("", engine.EventEmailUnsubscribed, "lead-1"))
	drain(t, r, 1)
	require.Equal(t, engine.LeadUnsubscribed, b.lead(t, "lead-1").Status)
	dispatchAll(t, r, t0)
	mails := b.outbox(t, store.KindEmail, "lead-1")
	require.Len(t, mails, 1)
	require.Equal(t, store.StatusSuppressed, mails[0].Status)
	require.Zero(t, b.mail.total())
}

func TestExpiredLeases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		resend    bool
		handedOff bool
		want      string
		sends     int
	}{
		// A worker handed the email off and died: counted, not resent.
		{"handed off", false, true, store.StatusUnknown, 0},
		{"handed off, resend unknown", true, true, store.StatusSent, 1},
		// A worker claimed it and died (or stalled) before the hand-off:
		// nothing left the building, so it is retried and sent.
		{"never handed off", false, false, store.StatusSent, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			r := b.runner(t, func(c *runner.Config) { c.ResendUnknown = tc.resend })
			enqueueEmails(t, b, r, "lead-1")
			ctx := context.Background()
			claimed, err := b.st.ClaimOutbox(ctx, store.ClaimParams{Now: t0, Limit: 10, Lease: time.Minute, Kinds: []string{store.KindEmail}})
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			if tc.handedOff {
				res, err := b.st.HandOff(ctx, []store.HandOff{{ID: claimed[0].ID, Attempts: claimed[0].Attempts}}, t0, time.Minute)
				require.NoError(t, err)
				require.Equal(t, []store.HandOffResult{{}}, res)
			}

			n, err := r.RecoverLeasesOnce(ctx, t0.Add(59*time.Second))
			require.NoError(t, err)
			require.Zero(t, n, "lease still running")
			n, err = r.RecoverLeasesOnce(ctx, t0.Add(61*time.Second))
			require.NoError(t, err)
			require.Equal(t, 1, n)
			dispatchAll(t, r, t0.Add(2*time.Minute))
			mails := b.outbox(t, store.KindEmail, "lead-1")
			require.Equal(t, tc.want, mails[0].Status)
			require.Equal(t, tc.sends, b.mail.total())
			// The stalled worker's late outcome never overwrites a newer
			// attempt; with no newer attempt (unknown), it is the truth.
			late := store.OutboxResult{ID: claimed[0].ID, Attempts: claimed[0].Attempts, Status: store.StatusSent, At: t0.Add(3 * time.Minute)}
			err = b.st.CompleteOutbox(ctx, []store.OutboxResult{late})
			if tc.want == store.StatusUnknown {
				require.NoError(t, err)
				require.Equal(t, store.StatusSent, b.outbox(t, store.KindEmail, "lead-1")[0].Status)
				return
			}
			require.ErrorIs(t, err, store.ErrStale)
			require.Equal(t, tc.want, b.outbox(t, store.KindEmail, "lead-1")[0].Status)
		})
	}
}

func TestEscalationNotifiesAndPublishesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	ctx := context.Background()
	var evs []*engine.Event
	evs = append(evs, event("", "trial.started", "hot"))
	for range 7 { // 70 points: one crossing of 50
		evs = append(evs, event("", "page.viewed", "hot"))
	}
	b.publish(t, evs...)
	drain(t, r, len(evs))

	l := b.lead(t, "hot")
	require.NotNil(t, l.Escalation)
	require.Equal(t, "ana", l.Escalation.Rep)
	require.Equal(t, "ana", l.Owner)
	hooks := b.outbox(t, store.KindNotifyWebhook, "hot")
	require.Len(t, hooks, 1)
	np := decode[outbox.NotifyPayload](t, hooks[0].Payload)
	require.Equal(t, l.Escalation.ID, np.Escalation.ID)
	require.Equal(t, "crm", np.Channel)
	require.Equal(t, l.Escalation.ID+"/1/crm", hooks[0].DedupeKey)

	events := b.outbox(t, store.KindEvent, "hot")
	require.Len(t, events, 1)
	ep := decode[outbox.EventPayload](t, events[0].Payload)
	require.Equal(t, runner.SubjectEscalated, ep.Subject)
	require.Equal(t, l.Escalation.ID, ep.ID)
	ce, err := cloudevent.Parse(ep.Data)
	require.NoError(t, err)
	require.Equal(t, engine.EventLeadEscalated, ce.Type)
	require.Equal(t, "ana", ce.Properties["rep"])

	// Deliver: the webhook handler gets it once, the event lands on NURTURE.
	dispatchAll(t, r, t0)
	require.Equal(t, 1, b.hooks.count(hooks[0].DedupeKey))
	s, err := b.conn.JetStream().Stream(ctx, "NURTURE")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.State.Msgs, uint64(2)) // lead.escalated + email.sent
	msg, err := s.GetLastMsgForSubject(ctx, runner.SubjectEscalated)
	require.NoError(t, err)
	require.Equal(t, l.Escalation.ID, msg.Header.Get("Nats-Msg-Id"))

	// More engagement does not escalate again.
	b.publish(t, event("", "page.viewed", "hot"), event("", "page.viewed", "hot"))
	drain(t, r, 2)
	require.Len(t, b.outbox(t, store.KindNotifyWebhook, "hot"), 1)
}

// TestAckTimeoutReroutesFromSweep: nobody acknowledges the escalation, so
// a timer sweep re-routes it to the next rep (attempt 2), with its own
// notification and lead.escalated event, through the locked-desk path.
func TestAckTimeoutReroutesFromSweep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) {
		c.Content.Scoring.AckTimeout = time.Hour
	})
	var evs []*engine.Event
	for range 5 {
		evs = append(evs, event("", "page.viewed", "hot"))
	}
	b.publish(t, evs...)
	drain(t, r, len(evs))
	l := b.lead(t, "hot")
	require.NotNil(t, l.Escalation)
	require.Equal(t, "ana", l.Owner)
	id := l.Escalation.ID

	n, err := r.SweepOnce(context.Background(), t0.Add(59*time.Minute))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = r.SweepOnce(context.Background(), t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)

	l = b.lead(t, "hot")
	require.Equal(t, "bo", l.Owner)
	require.Equal(t, 2, l.Escalation.Attempt)
	require.Equal(t, id, l.Escalation.ID, "the escalation keeps its id across re-routes")
	keys := map[string]bool{}
	for _, it := range b.outbox(t, store.KindNotifyWebhook, "hot") {
		keys[it.DedupeKey] = true
	}
	require.Equal(t, map[string]bool{id + "/1/crm": true, id + "/2/crm": true}, keys)
	evIDs := map[string]bool{}
	for _, it := range b.outbox(t, store.KindEvent, "hot") {
		evIDs[decode[outbox.EventPayload](t, it.Payload).ID] = true
	}
	require.Equal(t, map[string]bool{id: true, id + "/2": true}, evIDs)
}
