package storetest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/store"
)

// testHistoryOfOneEvent: an applied event and its effects (same lead, event
// id and time, appended together) read back exactly as appended, whatever
// the store does to write them cheaply (adapters/postgres packs them into
// one row); limits count entries, not rows.
func testHistoryOfOneEvent(t *testing.T, b *bundle) {
	at := b.now
	ev := []store.History{
		{LeadKey: "p", At: at, Kind: "event", EventID: "ev-1", Data: json.RawMessage(`{"type":"page.viewed"}`)},
		{LeadKey: "p", At: at, Kind: "score.changed", EventID: "ev-1", Data: json.RawMessage(`{"from":0,"to":10}`)},
		{LeadKey: "p", At: at, Kind: "enrolled", EventID: "ev-1"},
		{LeadKey: "q", At: at, Kind: "event", EventID: "ev-2", Data: json.RawMessage(`{"type":"page.viewed"}`)},
		{LeadKey: "p", At: at, Kind: "email.sent", EventID: "", Data: json.RawMessage(`{"step":"welcome"}`)},
		{LeadKey: "p", At: at, Kind: "step.entered", EventID: "", Data: json.RawMessage(`{"step":"pause"}`)},
	}
	inTx(t, b, func(tx store.Tx) { require.NoError(t, tx.AppendHistory(b.ctx, ev)) })
	p := []store.History{ev[0], ev[1], ev[2], ev[4], ev[5]}
	tests := []struct {
		name  string
		key   string
		limit int
		want  []store.History
	}{
		{"all", "p", 0, p},
		{"latest two", "p", 2, p[3:]},
		{"latest four, cutting into an event's entries", "p", 4, p[1:]},
		{"other lead", "q", 0, ev[3:4]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.s.History(b.ctx, tc.key, tc.limit)
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for i, w := range tc.want {
				g := got[i]
				require.Equal(t, w.Kind, g.Kind, "entry %d", i)
				require.Equal(t, w.LeadKey, g.LeadKey)
				require.Equal(t, w.EventID, g.EventID)
				require.True(t, w.At.Equal(g.At))
				if len(w.Data) == 0 {
					require.Empty(t, g.Data)
				} else {
					require.JSONEq(t, string(w.Data), string(g.Data))
				}
			}
		})
	}
}
