package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/internal/store"
)

// TestHistoryOneRowPerEvent: an event and its effects take one history row
// (the timeline's share of an ingest transaction), and read back as
// separate entries.
func TestHistoryOneRowPerEvent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := postgres.Open(ctx, testURL(t))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(ctx))
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	entries := []store.History{
		{LeadKey: "a", At: at, Kind: "event", EventID: "e1", Data: json.RawMessage(`{"type":"page.viewed"}`)},
		{LeadKey: "a", At: at, Kind: "score.changed", EventID: "e1", Data: json.RawMessage(`{"to":10}`)},
		{LeadKey: "b", At: at, Kind: "event", EventID: "e2"},
	}
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx store.Tx) error { return tx.AppendHistory(ctx, entries) }))
	var rows int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM history`).Scan(&rows))
	require.Equal(t, 2, rows)
	got, err := s.History(ctx, "a", 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "event", got[0].Kind)
	require.Equal(t, "score.changed", got[1].Kind)
}
