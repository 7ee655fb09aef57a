package engine

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scoreEvent applies the scoring rules for the event's type, in config
// order. The score was decayed to now before any rule applies.
func (a *applier) scoreEvent() {
	l, ev := a.l, a.ev
	for _, r := range a.e.rules[ev.Type] {
		if r.Condition != nil && !a.cond(r.Condition, nil, "rule", "", "", r.ID) {
			continue
		}
		pts, capped := r.Points, false
		if r.CapPoints > 0 && r.CapPeriod > 0 {
			u := a.ruleUse(r)
			left := max(r.CapPoints-u.Points, 0)
			if math.Abs(pts) > left {
				pts, capped = math.Copysign(left, pts), true
			}
			u.Points += math.Abs(pts)
		}
		a.score += pts
		l.Score.Value = a.score
		if l.Score.At.IsZero() {
			l.Score.At = a.now
		}
		a.emit(ScoreChanged{Rule: r.ID, Event: ev.ID, Delta: pts, Score: a.score, Capped: capped})
	}
}

// ruleUse returns the rule's use record for the period containing now,
// starting a new period when the last one is over.
func (a *applier) ruleUse(r *Rule) *RuleUse {
	l := a.l
	for i := range l.RuleUse {
		u := &l.RuleUse[i]
		if u.Rule != r.ID {
			continue
		}
		if !a.now.Before(u.PeriodStart.Add(r.CapPeriod)) {
			u.PeriodStart, u.Points = a.now, 0
		}
		return u
	}
	l.RuleUse = append(l.RuleUse, RuleUse{Rule: r.ID, PeriodStart: a.now})
	return &l.RuleUse[len(l.RuleUse)-1]
}

// checkEscalation applies the hysteresis: re-arm once the decayed score is
// below Rearm, escalate when armed and the score reaches Threshold.
func (a *applier) checkEscalation() {
	sc, l := a.e.content.Scoring, a.l
	if sc == nil {
		return
	}
	if !l.Armed && a.score < sc.Rearm {
		a.rearm()
	}
	if l.Armed && sc.Threshold > 0 && a.score >= sc.Threshold {
		a.escalate(sc)
	}
}

// rearm closes the current escalation (its rep's open count drops, no ack
// is awaited any more) and resumes the enrollments it paused.
func (a *applier) rearm() {
	l := a.l
	l.Armed = true
	if esc := l.Escalation; esc != nil {
		esc.AckDueAt = time.Time{}
		if ld := a.load(esc.Rep); ld != nil && ld.Open > 0 {
			ld.Open--
		}
	}
	for _, en := range l.Enrollments {
		if en != nil && en.Status == EnrollmentPaused && en.Reason == "escalated" {
			a.resume(en)
		}
	}
}

func (a *applier) escalate(sc *Scoring) {
	l := a.l
	l.Crossings++
	l.Armed = false
	rep, reason := a.route(nil)
	esc := &Escalation{ID: EscalationID(l.Key, l.Crossings), Rep: rep, At: a.now, Attempt: 1}
	if rep != "" {
		esc.Tried = []string{rep}
		l.Owner = rep
	}
	if sc.AckTimeout > 0 {
		esc.AckDueAt = a.now.Add(sc.AckTimeout)
	}
	l.Escalation = esc
	a.emit(Escalated{ID: esc.ID, Rep: rep, Attempt: 1, Score: a.score, Reason: reason})
	for _, en := range l.Enrollments {
		if en == nil || en.Status.Ended() {
			continue
		}
		act := sc.OnEscalate
		if si := a.info(en); si != nil && si.seq.Exit.OnEscalation != "" {
			act = si.seq.Exit.OnEscalation
		}
		switch act {
		case EscalationExit:
			a.exit(en, "escalated")
		case EscalationPause:
			a.pause(en, "escalated")
		}
	}
}

// ackTimeout re-routes an unacknowledged escalation whose SLA passed.
func (a *applier) ackTimeout() {
	esc, sc := a.l.Escalation, a.e.content.Scoring
	if esc == nil || esc.AckedBy != "" || esc.AckDueAt.IsZero() || esc.AckDueAt.After(a.now) {
		return
	}
	if sc == nil || sc.AckTimeout <= 0 {
		esc.AckDueAt = time.Time{}
		return
	}
	rep, reason := a.route(esc.Tried)
	if rep == "" {
		if esc.Rep == "" { // still nobody: try again after another timeout
			esc.AckDueAt = a.now.Add(sc.AckTimeout)
			return
		}
		// Every candidate of the lead's routing tiers was tried (or is away
		// or full): the SLA stops here and the escalation stays where it is.
		// No further escalated effect; one ignored effect says why.
		esc.AckDueAt = time.Time{}
		a.emit(Ignored{Reason: "escalation " + esc.ID + " not acknowledged within " + sc.AckTimeout.String() +
			"; no other eligible rep for the lead; stays with " + esc.Rep + ", no further re-routing"})
		return
	}
	if ld := a.load(esc.Rep); ld != nil && ld.Open > 0 {
		ld.Open--
	}
	prefix := "not acknowledged within " + sc.AckTimeout.String() + "; "
	if esc.Rep == "" {
		prefix = "a rep became available; "
	}
	esc.Rep = rep
	esc.Attempt++
	esc.Tried = append(esc.Tried, rep)
	esc.AckDueAt = a.now.Add(sc.AckTimeout)
	a.l.Owner = rep
	a.emit(Escalated{ID: esc.ID, Rep: rep, Attempt: esc.Attempt, Score: a.score, Reason: prefix + reason})
}

// ack handles escalation.acknowledged (properties.escalation, .rep).
func (a *applier) ack() {
	l, ev := a.l, a.ev
	id, _ := ev.Properties["escalation"].(string)
	rep, _ := ev.Properties["rep"].(string)
	esc := l.Escalation
	switch {
	case esc == nil || (id != "" && id != esc.ID):
		a.emit(Ignored{Event: ev.ID, Reason: "acknowledgement of an unknown escalation"})
		return
	case esc.AckedBy != "":
		a.emit(Ignored{Event: ev.ID, Reason: "escalation already acknowledged by " + esc.AckedBy})
		return
	}
	if rep == "" {
		rep = esc.Rep
	}
	if rep == "" {
		a.emit(Ignored{Event: ev.ID, Reason: "acknowledgement without a rep"})
		return
	}
	if rep != esc.Rep {
		if _, known := a.e.reps[rep]; !known && !slices.Contains(esc.Tried, rep) {
			a.emit(Ignored{Event: ev.ID, Reason: "acknowledgement by unknown rep " + rep})
			return
		}
		// Another rep took it: move the open escalation to them.
		if ld := a.load(esc.Rep); ld != nil && ld.Open > 0 {
			ld.Open--
		}
		if ld := a.load(rep); ld != nil {
			ld.Open++
		}
		esc.Rep = rep
	}
	esc.AckedBy, esc.AckedAt, esc.AckDueAt = rep, a.now, time.Time{}
	l.Owner = rep
	a.emit(Acknowledged{ID: esc.ID, Rep: rep})
}

// load returns the desk entry of rep, creating it; nil without a desk.
func (a *applier) load(rep string) *RepLoad {
	if a.desk == nil || rep == "" {
		return nil
	}
	if a.desk.Reps == nil {
		a.desk.Reps = make(map[string]*RepLoad)
	}
	ld := a.desk.Reps[rep]
	if ld == nil {
		ld = &RepLoad{}
		a.desk.Reps[rep] = ld
	}
	return ld
}

// route picks the rep for an escalation, skipping exclude, and records the
// assignment on the desk. Eligible reps are not away (config or desk) and
// under capacity. Territory routing goes through the lead's tiers in order:
// reps whose territories contain the lead's territory trait
// (case-insensitive), then catch-all reps (no territories). Reps of other
// territories are a third tier only when no rep at all (eligible or not)
// covers the lead's territory, or the lead has none. Among the first tier
// with an eligible rep, the rep with the fewest assignments wins, ties
// broken by config order. Re-routes pass the reps already tried as exclude,
// so an escalation never leaves the lead's tiers.
func (a *applier) route(exclude []string) (rep, reason string) {
	sc := a.e.content.Scoring
	if sc == nil || len(sc.Routing.Reps) == 0 {
		return "", "no rep available"
	}
	rt := &sc.Routing
	territory := ""
	if rt.Strategy == RouteTerritory && rt.TerritoryTrait != "" {
		if v, ok := a.l.Traits[rt.TerritoryTrait].(string); ok {
			territory = strings.TrimSpace(v)
		}
	}
	// Group 0: territory match (or everyone under round-robin), 1: catch-all,
	// 2: any other eligible rep.
	var count [3]int
	best := [3]int{-1, -1, -1}
	var bestLoad [3]int64
	covered := false // some rep, eligible or not, has the lead's territory
	for i := range rt.Reps {
		r := &rt.Reps[i]
		inTerritory := rt.Strategy == RouteTerritory && territory != "" &&
			slices.ContainsFunc(r.Territories, func(t string) bool { return strings.EqualFold(t, territory) })
		covered = covered || inTerritory
		if slices.Contains(exclude, r.ID) || r.Away {
			continue
		}
		var assigned int64
		if a.desk != nil {
			if ld := a.desk.Reps[r.ID]; ld != nil {
				if ld.Away || (r.Capacity > 0 && ld.Open >= r.Capacity) {
					continue
				}
				assigned = ld.Assigned
			}
		}
		g := 0
		if rt.Strategy == RouteTerritory {
			switch {
			case inTerritory:
				g = 0
			case len(r.Territories) == 0:
				g = 1
			default:
				g = 2
			}
		}
		count[g]++
		if best[g] < 0 || assigned < bestLoad[g] {
			best[g], bestLoad[g] = i, assigned
		}
	}
	tiers := 3
	if covered {
		tiers = 2 // never to another territory's reps
	}
	g := 0
	for g < tiers && best[g] < 0 {
		g++
	}
	if g == tiers {
		return "", "no rep available"
	}
	var b strings.Builder
	if rt.Strategy == RouteTerritory {
		if territory == "" {
			b.WriteString("territory unknown")
		} else {
			b.WriteString("territory=" + strings.ToLower(territory))
		}
		switch {
		case g == 1 && territory != "":
			b.WriteString("; no rep for it, catch-all reps")
		case g == 1:
			b.WriteString("; catch-all reps")
		case g == 2 && territory != "":
			b.WriteString("; no rep for it and no catch-all rep, everyone")
		case g == 2:
			b.WriteString("; no catch-all rep, everyone")
		}
	} else {
		b.WriteString("round-robin")
	}
	b.WriteString("; " + strconv.Itoa(count[g]) + " eligible; least assigned")
	chosen := &rt.Reps[best[g]]
	if ld := a.load(chosen.ID); ld != nil {
		ld.Open++
		ld.Assigned++
		ld.LastAt = a.now
	}
	return chosen.ID, b.String()
}
