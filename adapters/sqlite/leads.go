package sqlite

import (
	"context"
	"fmt"

	"github.com/nurture-oss/nurture/engine"
)

// qRecentLeads lists leads, most recently updated first.
const qRecentLeads = `SELECT key, state FROM leads ORDER BY updated_at DESC, key LIMIT ?`

// RecentLeads returns up to limit leads (default 100), most recently
// updated first, ties by key.
func (s *Store) RecentLeads(ctx context.Context, limit int) ([]*engine.Lead, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, qRecentLeads, limit)
	if err != nil {
		return nil, translate("recent leads", err)
	}
	return collect(rows, "recent leads", func(r scanner) (*engine.Lead, error) {
		var key string
		var state []byte
		if err := r.Scan(&key, &state); err != nil {
			return nil, err
		}
		l, err := decodeLead(key, state)
		if err != nil {
			return nil, fmt.Errorf("recent leads: %w", err)
		}
		return l, nil
	})
}
