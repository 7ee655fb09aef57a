// Command worker is the process the fault tests kill: runner + PostgreSQL +
// NATS, wired like a server, with emails "sent" as HTTP POSTs of their
// dedupe key to the test's sink (FAULT_SINK_URL).
package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/runner/faulttest"
	"github.com/nurture-oss/nurture/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, log); err != nil {
		log.Error("worker failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	var st *postgres.Store
	var err error
	for st == nil {
		if st, err = postgres.Open(ctx, os.Getenv("NURTURE_DATABASE_URL"), postgres.WithMaxConns(8)); err != nil {
			log.Warn("database not ready", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	defer st.Close()
	conn, err := nats.Connect(ctx, nats.Options{URL: os.Getenv("NURTURE_NATS_URL"), AckWait: 3 * time.Second, FetchWait: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.EnsureStreams(ctx); err != nil {
		return err
	}
	cons, err := conn.Consumer(ctx)
	if err != nil {
		return err
	}
	sink := os.Getenv("FAULT_SINK_URL")
	client := &http.Client{Timeout: 2 * time.Second}
	mail := outbox.HandlerFunc(func(ctx context.Context, item store.OutboxItem) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink, bytes.NewBufferString(item.DedupeKey))
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("sink: %v: %w", err, outbox.ErrUnknown)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sink status %d", resp.StatusCode)
		}
		return nil
	})
	r, err := runner.New(runner.Config{
		Store: st, Content: faulttest.Content(), Consumer: runner.AdaptConsumer(cons),
		Publisher: conn.Publisher("worker"),
		Handlers:  map[string]outbox.Handler{store.KindEmail: mail},
		Logger:    log, BatchSize: 200,
		SweepInterval: 100 * time.Millisecond, DispatchPoll: 50 * time.Millisecond,
		Lease: 4 * time.Second, DeliverTimeout: 2 * time.Second, LeaseCheckInterval: 500 * time.Millisecond,
		RetryBase: 200 * time.Millisecond, RetryMax: time.Second, NakDelay: 200 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	log.Info("worker running")
	return r.Run(ctx)
}
