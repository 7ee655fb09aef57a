package postgres

import (
	"context"

	"github.com/nurture-oss/nurture/engine"
)

// qRecentLeads lists leads, most recently updated first.
const qRecentLeads = `SELECT key, state, created_at FROM leads ORDER BY updated_at DESC, key LIMIT $1`

// RecentLeads returns up to limit leads (default 100), most recently
// updated first, ties by key.
func (s *Store) RecentLeads(ctx context.Context, limit int) ([]*engine.Lead, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, qRecentLeads, limit)
	if err != nil {
		return nil, translate("recent leads", err)
	}
	return collect(rows, "recent leads", scanLead)
}
