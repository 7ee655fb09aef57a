package bench

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"runtime/debug"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/nurture-oss/nurture/adapters/postgres"
)

// growthPoint is what was measured at one lead count.
type growthPoint struct {
	size           int
	ingest, timers float64
	loadRate       float64 // leads loaded per second (load + vacuum)
	// limApply and limClaim are the raw limits measured again just before
	// this point, to tell the machine's load apart from the lead count.
	limApply, limClaim float64
	measureTime        time.Duration
	bytesPerLead       float64
}

// growth bulk-loads enrolled leads into a database of its own, and at
// each size measures ingest and timer rates, this process's RSS and the
// bytes per lead.
func (r *run) growth(ctx context.Context) error {
	if len(r.sz.Growth) == 0 {
		r.note("growth: no sizes configured")
		return nil
	}
	gURL, err := r.createDB(ctx, "_growth")
	if err != nil {
		return err
	}
	gst, err := openStore(ctx, gURL)
	if err != nil {
		return err
	}
	defer gst.Close()
	pool := gst.Pool()
	dataDir := ""
	_ = pool.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dataDir)

	var points []growthPoint
	loaded := 0
	checkpointNoted := false
	for _, size := range r.sz.Growth {
		if prev := last(points); prev != nil {
			if reason := r.growthFits(prev, size, dataDir); reason != "" {
				r.add(Row{Workload: fmt.Sprintf("growth.%d", size), Name: fmt.Sprintf("Growth: %s leads", count(size)),
					Unit: "—", Verdict: VerdictSkipped, Note: reason})
				continue
			}
		}
		r.progress("growth: loading leads %s → %s (enrolled, waiting on a timer) …", count(loaded), count(size))
		lstart := time.Now()
		if err := r.tmpl.load(ctx, pool, "leads", "g-", loaded, size, time.Now().Add(24*time.Hour).Add(time.Duration(loaded)*10*time.Millisecond),
			10*time.Millisecond, true); err != nil {
			return fmt.Errorf("growth: %w", err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE leads`); err != nil {
			return fmt.Errorf("growth: vacuum: %w", err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE enrollments`); err != nil {
			return fmt.Errorf("growth: vacuum: %w", err)
		}
		// Start the measurement from a checkpoint, not in the middle of the
		// one the bulk load set off.
		if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil && !checkpointNoted {
			checkpointNoted = true
			r.note("growth: CHECKPOINT after the bulk load failed (%v); the measurements may overlap a checkpoint", err)
		}
		p := growthPoint{size: size, loadRate: float64(size-loaded) / time.Since(lstart).Seconds()}
		r.progress("growth: loaded %s leads in %s", count(size-loaded), time.Since(lstart).Round(100*time.Millisecond))
		loaded = size
		mstart := time.Now()
		probe := min(r.sz.LimitApply, r.sz.LimitClaim, 50_000)
		am, an, err := r.rawApply(ctx, probe)
		if err != nil {
			return fmt.Errorf("growth: raw apply probe: %w", err)
		}
		cm, cn, err := r.rawClaim(ctx, probe)
		if err != nil {
			return fmt.Errorf("growth: raw claim probe: %w", err)
		}
		p.limApply, p.limClaim = am.rate(an), cm.rate(cn)
		r.progress("growth: machine check before measuring at %s leads: raw apply %s events/s, raw claim %s rows/s",
			count(size), fmtValue(p.limApply), fmtValue(p.limClaim))
		if err := r.growthPoint(ctx, gst, &p); err != nil {
			return fmt.Errorf("growth at %d leads: %w", size, err)
		}
		p.measureTime = time.Since(mstart)
		points = append(points, p)
	}
	if len(points) < 2 {
		r.note("growth: throughput ratios need two measured sizes; only %d measured", len(points))
		return nil
	}
	first, lastP := points[0], points[len(points)-1]
	for _, x := range []struct {
		what, workload string
		from, to       float64
		limFrom, limTo float64
	}{
		{"ingest", "growth.ingest_ratio", first.ingest, lastP.ingest, first.limApply, lastP.limApply},
		{"timers", "growth.timers_ratio", first.timers, lastP.timers, first.limClaim, lastP.limClaim},
	} {
		ratio := x.to / x.from
		// The same ratio with each rate divided by the raw limit measured
		// just before it: what is left is the effect of the lead count,
		// not of the machine's load changing between the two points.
		norm := (x.to / x.limTo) / (x.from / x.limFrom)
		r.add(Row{Workload: x.workload, Name: fmt.Sprintf("Growth: %s rate at %s leads / at %s (machine-normalised)", x.what, count(lastP.size), count(first.size)),
			Value: norm, Unit: "×", Goal: "≥ 0.8", Verdict: verdict(norm >= goalGrowth),
			Note: fmt.Sprintf("raw ratio %.2f (%s → %s/s); raw limit just before each point %s → %s/s", ratio,
				fmtValue(x.from), fmtValue(x.to), fmtValue(x.limFrom), fmtValue(x.limTo))})
	}
	return nil
}

// growthFits says why the next size would not fit (disk or time budget),
// or "".
func (r *run) growthFits(prev *growthPoint, size int, dataDir string) string {
	more := size - prev.size
	need := int64(prev.bytesPerLead*float64(more)*1.5) + 1<<30 // tables, WAL, vacuum headroom
	if dataDir != "" {
		if free := freeDisk(dataDir); free >= 0 && need > free {
			return fmt.Sprintf("skipped: needs about %d GiB free at %s, %d GiB available", need>>30, dataDir, free>>30)
		}
	}
	if r.cfg.Budget > 0 {
		est := time.Duration(float64(more)/prev.loadRate*float64(time.Second)) + 2*prev.measureTime
		left := r.cfg.Budget - time.Since(r.start)
		if est > left {
			return fmt.Sprintf("skipped: loading %s more leads at the measured %s leads/s and measuring would take about %s; %s of the %s budget left (raise --budget to run it)",
				count(more), count(int(prev.loadRate)), est.Round(time.Second), left.Round(time.Second), r.cfg.Budget)
		}
	}
	return ""
}

func last(ps []growthPoint) *growthPoint {
	if len(ps) == 0 {
		return nil
	}
	return &ps[len(ps)-1]
}

func (r *run) growthPoint(ctx context.Context, gst *postgres.Store, p *growthPoint) error {
	pool := gst.Pool()
	size := p.size
	rng := mrand.New(mrand.NewPCG(uint64(size), 3))
	now := time.Now()

	// Ingest: page views of random existing leads.
	events := r.sz.GrowthEvents
	gen := func(i int) (*natsgo.Msg, error) {
		return natsMsg(pageView(fmt.Sprintf("g%d-ev-%d", size, i), leadKey("g-", rng.IntN(size)), now, i))
	}
	w, err := r.newWorker(ctx, gst, true, nil)
	if err != nil {
		return err
	}
	r.progress("growth: %s leads: ingesting %d page views of random leads …", count(size), events)
	m, err := r.runIngest(ctx, w, events, gen, pool)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	p.ingest = m.rate(int64(events))
	limit := r.lim.combinedIngest()
	row := m.row(Row{Workload: fmt.Sprintf("growth.%d.ingest", size), Name: fmt.Sprintf("Growth: ingest at %s leads", count(size)),
		Value: p.ingest, Unit: "events/s", Limit: limit, LimitName: "ingest limit", Goal: "≥ 50,000/s",
		Note: fmt.Sprintf("%d page views of random leads; %s", events, w.batchNote())}, int64(events))
	row.Verdict = verdict(p.ingest >= goalIngest)
	r.add(row)

	// Timers: a random sample of leads falls due.
	picked := make(map[int]bool, r.sz.GrowthDue)
	keys := make([]string, 0, r.sz.GrowthDue)
	for len(keys) < r.sz.GrowthDue {
		i := rng.IntN(size)
		if !picked[i] {
			picked[i] = true
			keys = append(keys, leadKey("g-", i))
		}
	}
	picked = nil
	if err := makeDue(ctx, pool, keys, time.Now().Add(-time.Minute)); err != nil {
		return err
	}
	tw, err := r.newWorker(ctx, gst, false, nil)
	if err != nil {
		return err
	}
	var fired int
	tm, err := measure(ctx, pool, func() error {
		var err error
		fired, err = tw.rn.SweepOnce(ctx, time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("timers: %w", err)
	}
	if fired != len(keys) {
		return fmt.Errorf("timers: fired %d of %d due leads", fired, len(keys))
	}
	p.timers = tm.rate(int64(fired))
	trow := tm.row(Row{Workload: fmt.Sprintf("growth.%d.timers", size), Name: fmt.Sprintf("Growth: due steps at %s leads", count(size)),
		Value: p.timers, Unit: "steps/s", Limit: r.lim.pgClaim, LimitName: "claim limit", Goal: "≥ 50,000/s",
		Note: fmt.Sprintf("%d random leads due at once; %s", fired, tw.sweepNote())}, int64(fired))
	trow.Verdict = verdict(p.timers >= goalTimers)
	r.add(trow)

	// Memory: this process after a collection, and its peak.
	keys = nil
	runtime.GC()
	debug.FreeOSMemory()
	rss, peak := procStatus("VmRSS"), procStatus("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mib := float64(rss) / (1 << 20)
	r.add(Row{Workload: fmt.Sprintf("growth.%d.rss", size), Name: fmt.Sprintf("Growth: worker RSS at %s leads", count(size)),
		Value: mib, Unit: "MiB", Goal: "≤ 128 MiB", Verdict: verdict(rss > 0 && mib <= goalRSSMiB),
		Note: fmt.Sprintf("whole bench process (%s); peak %.0f MiB, Go heap in use %.0f MiB",
			r.processParts(), float64(peak)/(1<<20), float64(ms.HeapInuse)/(1<<20))})

	var bytes, leads int64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('leads') + pg_total_relation_size('enrollments'), (SELECT count(*) FROM leads)`).
		Scan(&bytes, &leads); err != nil {
		return fmt.Errorf("relation sizes: %w", err)
	}
	p.bytesPerLead = float64(bytes) / float64(leads)
	r.add(Row{Workload: fmt.Sprintf("growth.%d.bytes_per_lead", size), Name: fmt.Sprintf("Growth: PostgreSQL bytes per lead at %s leads", count(size)),
		Value: p.bytesPerLead, Unit: "bytes/lead", Count: leads,
		Note: "leads + enrollments tables with indexes and TOAST (history and outbox grow with activity)"})
	return nil
}

// count formats a lead count: 100k, 1M, 10M, 2500.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
