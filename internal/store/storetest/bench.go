package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// benchLead is a lead of realistic size: a few traits, a score, one
// active enrollment with some history, a due timer.
func benchLead(key string, now time.Time) *engine.Lead {
	l := engine.NewLead(key, now)
	l.Email = key + "@example.com"
	l.Traits = map[string]any{"first_name": "Ada", "company": "Analytical Engines Ltd", "plan": "trial",
		"timezone": "Europe/London", "seats": 25.0}
	l.Score = engine.Score{Value: 12, At: now}
	l.Enrollments = []*engine.Enrollment{{ID: key + "/trial/1", Sequence: "trial-nurture", Version: "3f9a2c",
		Step: "tips", Status: engine.EnrollmentActive, NextRunAt: now.Add(48 * time.Hour), StartedAt: now,
		Sent: []string{"welcome"}, Opened: []string{"welcome"}}}
	l.Sends = []time.Time{now}
	l.NextRunAt = now.Add(48 * time.Hour)
	return l
}

// BenchApplyBatch measures the ingest transaction: per transaction,
// LockLeads + MarkEvents + SaveLeads + AppendHistory for batch events on
// batch distinct, existing leads, run by workers concurrent workers. One
// event in ten moves its lead's enrollment (an enrollments-mirror write).
// It reports events/s. s must be migrated.
func BenchApplyBatch(b *testing.B, s store.Store, batch, workers int) {
	ctx := context.Background()
	now := Now
	const pool = 20000
	keys := make([]string, pool)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench-%06d", i)
	}
	// Create the leads up front: ingest mostly hits known leads.
	for i := 0; i < pool; i += 1000 {
		chunk := keys[i:min(i+1000, pool)]
		require.NoError(b, s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
			if _, err := tx.LockLeads(ctx, chunk, now); err != nil {
				return err
			}
			ls := make([]*engine.Lead, len(chunk))
			for j, k := range chunk {
				ls[j] = benchLead(k, now)
			}
			return tx.SaveLeads(ctx, ls)
		}))
	}
	data := json.RawMessage(`{"type":"page.viewed","properties":{"path":"/pricing"}}`)
	var seq atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + workers - 1) / workers
	for w := range workers {
		wg.Go(func() {
			for range per {
				n := seq.Add(1) - 1
				// Each worker takes its own slice of the pool, so batches
				// of concurrent workers do not collide.
				start := (int(n)*batch + w*pool/workers) % pool
				ks := make([]string, batch)
				ids := make([]string, batch)
				for j := range ks {
					ks[j] = keys[(start+j)%pool]
					ids[j] = fmt.Sprintf("ev-%d-%d", n, j)
				}
				err := s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
					leads, err := tx.LockLeads(ctx, ks, now)
					if err != nil {
						return err
					}
					fresh, err := tx.MarkEvents(ctx, ids, now)
					if err != nil {
						return err
					}
					out := make([]*engine.Lead, 0, len(leads))
					hist := make([]store.History, 0, len(ids))
					for j, k := range ks {
						if !fresh[ids[j]] {
							continue
						}
						l := leads[k]
						l.Score.Value++
						l.UpdatedAt = now
						if j%10 == 0 && len(l.Enrollments) > 0 {
							l.Enrollments[0].NextRunAt = l.Enrollments[0].NextRunAt.Add(time.Minute)
						}
						out = append(out, l)
						hist = append(hist, store.History{LeadKey: k, At: now, Kind: "event", EventID: ids[j], Data: data})
					}
					if err := tx.SaveLeads(ctx, out); err != nil {
						return err
					}
					return tx.AppendHistory(ctx, hist)
				})
				if err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(per*workers*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchClaimDue measures the timer sweep: per transaction, ClaimDueLeads
// of batch due leads, then SaveLeads with their timers moved a day on
// (what firing a step does), by workers concurrent workers. It reports
// timers/s. s must be migrated.
func BenchClaimDue(b *testing.B, s store.Store, batch, workers int) {
	ctx := context.Background()
	now := Now
	per := (b.N + workers - 1) / workers
	total := per * workers * batch
	// Seed exactly as many due leads as the run will claim, plus many
	// not-due ones that the sweep must not pay for.
	for i := 0; i < total*2; i += 1000 {
		require.NoError(b, s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
			ks := make([]string, 0, 1000)
			for j := i; j < min(i+1000, total*2); j++ {
				ks = append(ks, fmt.Sprintf("due-%07d", j))
			}
			if _, err := tx.LockLeads(ctx, ks, now); err != nil {
				return err
			}
			ls := make([]*engine.Lead, len(ks))
			for j, k := range ks {
				l := benchLead(k, now)
				if (i+j)%2 == 0 {
					l.NextRunAt = now.Add(-time.Duration(i+j) * time.Millisecond)
				}
				ls[j] = l
			}
			return tx.SaveLeads(ctx, ls)
		}))
	}
	var claimed atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range per {
				err := s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
					ls, err := tx.ClaimDueLeads(ctx, now, batch)
					if err != nil {
						return err
					}
					for _, l := range ls {
						l.NextRunAt = now.Add(24 * time.Hour)
						l.Enrollments[0].Step = "offer"
						l.Enrollments[0].NextRunAt = l.NextRunAt
					}
					claimed.Add(int64(len(ls)))
					return tx.SaveLeads(ctx, ls)
				})
				if err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	if int(claimed.Load()) != total {
		b.Fatalf("claimed %d timers, want %d", claimed.Load(), total)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "timers/s")
}
