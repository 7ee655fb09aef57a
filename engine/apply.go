package engine

import (
	"math"
	"slices"
	"time"
)

// recentEvents is how many event ids a lead remembers to drop duplicates.
// Small on purpose: it lives in every lead document, and the runtime's
// transactional dedupe is the real guarantee.
const recentEvents = 8

// applier carries one Apply call.
type applier struct {
	e     *Engine
	l     *Lead
	now   time.Time
	ev    *Event
	desk  *Desk
	out   []Effect
	score float64 // decayed score at now, kept current
	env   *Env    // reused for condition evaluation; allocated on first use
	dup   bool    // the event is among the lead's recent events
}

func (a *applier) emit(f Effect) {
	if a.out == nil {
		a.out = make([]Effect, 0, 4)
	}
	a.out = append(a.out, f)
}

func (a *applier) run() {
	l := a.l
	if l.Status == "" {
		l.Status = LeadActive
	}
	if !l.Armed && l.Escalation == nil && l.Crossings == 0 {
		l.Armed = true // never escalated: nothing to hysteresis
	}
	if a.now.After(l.UpdatedAt) {
		l.UpdatedAt = a.now
	}
	a.decay()
	if a.ev != nil {
		// Unsubscribes, hard bounces and complaints take effect before
		// anything else can send: before versions migrate, paused
		// enrollments resume or due timers fire.
		a.remember()
		if !a.dup {
			a.statusEvent()
		}
	}
	a.reconcileVersions()
	a.checkEscalation()
	a.fireDue()
	a.ackTimeout()
	if a.ev != nil {
		a.applyEvent()
	}
	a.nextRun()
}

// remember records the event id in the lead's ring of recent events, or
// marks the event a duplicate when it is already there.
func (a *applier) remember() {
	l, id := a.l, a.ev.ID
	if slices.Contains(l.RecentEvents, id) {
		a.dup = true
		return
	}
	if len(l.RecentEvents) < recentEvents {
		l.RecentEvents = append(l.RecentEvents, id)
		return
	}
	if l.RecentNext < 0 || l.RecentNext >= len(l.RecentEvents) {
		l.RecentNext = 0
	}
	l.RecentEvents[l.RecentNext] = id
	l.RecentNext = (l.RecentNext + 1) % len(l.RecentEvents)
}

// decay brings the score to now (never backwards: an input older than the
// score's time leaves it as is).
func (a *applier) decay() {
	l := a.l
	v := l.Score.Value
	if !a.now.After(l.Score.At) {
		a.score = v
		return
	}
	if sc := a.e.content.Scoring; sc != nil && sc.HalfLife > 0 && v != 0 && !l.Score.At.IsZero() {
		v *= math.Exp2(-float64(a.now.Sub(l.Score.At)) / float64(sc.HalfLife))
	}
	l.Score = Score{Value: v, At: a.now}
	a.score = v
}

func (a *applier) info(en *Enrollment) *seqInfo {
	return a.e.byKey[seqKey{en.Sequence, en.Version}]
}

// cond evaluates c; a run-time error counts as false and is reported.
func (a *applier) cond(c Condition, en *Enrollment, where, sequence, step, rule string) bool {
	if c == nil {
		return true
	}
	if a.env == nil {
		a.env = new(Env)
	}
	*a.env = Env{Lead: a.l, Event: a.ev, Enrollment: en, Now: a.now, Score: a.score}
	ok, err := c.Eval(a.env)
	if err != nil {
		f := ConditionFailed{Where: where, Sequence: sequence, Step: step, Rule: rule, Error: err.Error()}
		if a.ev != nil {
			f.Event = a.ev.ID
		}
		a.emit(f)
		return false
	}
	return ok
}

// reconcileVersions applies version policies lazily, whenever the lead is
// touched.
func (a *applier) reconcileVersions() {
	for _, en := range a.l.Enrollments {
		if en == nil || en.Status.Ended() {
			continue
		}
		si := a.info(en)
		if si == nil {
			a.exit(en, "version_unknown")
			continue
		}
		cur := a.e.current[en.Sequence]
		if cur == nil || cur == si {
			continue
		}
		switch cur.seq.InFlight {
		case InFlightExit:
			a.exit(en, "version")
		case InFlightMigrate:
			ni, ok := cur.steps[en.Step]
			if !ok {
				a.exit(en, "version")
				continue
			}
			old := si.seq.Steps[si.steps[en.Step]]
			nst := cur.seq.Steps[ni]
			from := en.Version
			en.Version = cur.seq.Version
			a.emit(Migrated{Enrollment: en.ID, Sequence: en.Sequence, From: from, To: en.Version, Step: en.Step})
			switch {
			case old.Kind != nst.Kind:
				// A different kind of step: enter it afresh.
				en.NextRunAt, en.WaitingFor, en.PausedLeft = time.Time{}, "", 0
				if en.Status == EnrollmentActive {
					a.runEnrollment(en, cur)
				}
			case nst.Kind == StepWaitFor && en.WaitingFor != "":
				en.WaitingFor = nst.Event
			}
		}
	}
}

// fireDue runs every active enrollment whose timer is due, earliest first.
func (a *applier) fireDue() {
	var buf [8]int
	due := buf[:0]
	for i, en := range a.l.Enrollments {
		if en != nil && en.Status == EnrollmentActive && !en.NextRunAt.IsZero() && !en.NextRunAt.After(a.now) {
			due = append(due, i)
		}
	}
	if len(due) > 1 {
		ens := a.l.Enrollments
		slices.SortStableFunc(due, func(x, y int) int { return ens[x].NextRunAt.Compare(ens[y].NextRunAt) })
	}
	for _, i := range due {
		en := a.l.Enrollments[i]
		if si := a.info(en); si != nil {
			a.runEnrollment(en, si)
		}
	}
}

func (a *applier) nextRun() {
	var next time.Time
	for _, en := range a.l.Enrollments {
		if en != nil && en.Status == EnrollmentActive && !en.NextRunAt.IsZero() && (next.IsZero() || en.NextRunAt.Before(next)) {
			next = en.NextRunAt
		}
	}
	if esc := a.l.Escalation; esc != nil && esc.AckedBy == "" && !esc.AckDueAt.IsZero() && (next.IsZero() || esc.AckDueAt.Before(next)) {
		next = esc.AckDueAt
	}
	if t := a.rearmAt(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	a.l.NextRunAt = next
}

// rearmAt returns the first whole minute at which the decayed score of an
// escalated (disarmed) lead is below Rearm, so that a Tick then re-arms it
// and resumes its paused enrollments; zero when decay never gets there (no
// half-life, or a mark at or below zero).
func (a *applier) rearmAt() time.Time {
	sc, l := a.e.content.Scoring, a.l
	if l.Armed || sc == nil || sc.HalfLife <= 0 || sc.Rearm <= 0 || l.Score.At.IsZero() {
		return time.Time{}
	}
	v, from := l.Score.Value, l.Score.At
	if v < sc.Rearm {
		return time.Time{} // checkEscalation re-arms at the next input anyway
	}
	// v·2^(−Δ/H) < Rearm ⇔ Δ > H·log2(v/Rearm).
	d := float64(sc.HalfLife) * math.Log2(v/sc.Rearm)
	if !(d >= 0) || d > float64(100*365*24*time.Hour) {
		return time.Time{} // beyond any horizon worth a timer
	}
	t := from.Add(time.Duration(d)).Truncate(time.Minute).Add(time.Minute)
	// Guard against rounding: the Tick must find the score below the mark,
	// computed exactly as decay computes it.
	for range 4 {
		if v*math.Exp2(-float64(t.Sub(from))/float64(sc.HalfLife)) < sc.Rearm {
			return t
		}
		t = t.Add(time.Minute)
	}
	return t
}

func (a *applier) applyEvent() {
	l, ev := a.l, a.ev
	if a.dup {
		a.emit(Ignored{Event: ev.ID, Reason: "duplicate event"})
		return
	}
	if ev.Email != "" {
		l.Email = ev.Email
	}
	if len(ev.Traits) > 0 {
		if l.Traits == nil {
			l.Traits = make(map[string]any, len(ev.Traits))
		}
		for k, v := range ev.Traits { // order-independent: a merge
			l.Traits[k] = v
		}
	}
	n := len(l.Enrollments) // enrollments that existed before this event
	// The status change (if any) was applied first, in run.
	if ev.Type == EventEscalationAcked {
		a.ack()
	}
	if reason := a.filtered(); reason != "" {
		a.emit(Ignored{Event: ev.ID, Reason: reason})
		return
	}
	a.recordEngagement()
	a.scoreEvent()
	a.checkEscalation()
	a.exitGoals(n)
	a.waitFor(n)
	a.enroll()
}

func (a *applier) statusEvent() {
	l, ev := a.l, a.ev
	var to LeadStatus
	switch ev.Type {
	case EventEmailUnsubscribed:
		to = LeadUnsubscribed
	case EventEmailBounced:
		if k, _ := ev.Properties["kind"].(string); k == "hard" {
			to = LeadBounced
		}
	case EventEmailComplained:
		to = LeadComplained
	}
	if to == "" || l.Status == to {
		return
	}
	from := l.Status
	l.Status = to
	a.emit(StatusChanged{From: from, To: to, Event: ev.ID})
	for _, en := range l.Enrollments {
		if en != nil && !en.Status.Ended() {
			a.exit(en, string(to))
		}
	}
}

// engagement returns the step named by an opened/clicked event and whether
// en sent it (index into en.Sent).
func (a *applier) engagement(en *Enrollment, step, seq, enr string) int {
	if en == nil || (enr != "" && en.ID != enr) || (seq != "" && en.Sequence != seq) {
		return -1
	}
	return slices.Index(en.Sent, step)
}

func (a *applier) engagementProps() (step, seq, enr string) {
	p := a.ev.Properties
	step, _ = p["step"].(string)
	seq, _ = p["sequence"].(string)
	enr, _ = p["enrollment"].(string)
	return
}

// filtered reports why an event must be ignored (machine traffic, an open
// too soon after the send), or "".
func (a *applier) filtered() string {
	sc, ev := a.e.content.Scoring, a.ev
	if sc == nil {
		return ""
	}
	if sc.IgnoreMachine && ev.Machine {
		return "machine traffic"
	}
	if ev.Type != EventEmailOpened || sc.IgnoreOpensWithin <= 0 {
		return ""
	}
	step, seq, enr := a.engagementProps()
	if step == "" {
		return ""
	}
	at := a.now
	if !ev.Time.IsZero() && !ev.Time.After(a.now) {
		at = ev.Time
	}
	for _, en := range a.l.Enrollments {
		i := a.engagement(en, step, seq, enr)
		if i < 0 || i >= len(en.SentAt) {
			continue
		}
		if at.Sub(en.SentAt[i]) < sc.IgnoreOpensWithin {
			return "open within " + sc.IgnoreOpensWithin.String() + " of the send"
		}
	}
	return ""
}

// recordEngagement records opens and clicks on the enrollments that sent
// the step. A click counts as an open too. Recording is idempotent.
func (a *applier) recordEngagement() {
	typ := a.ev.Type
	if typ != EventEmailOpened && typ != EventEmailClicked {
		return
	}
	step, seq, enr := a.engagementProps()
	if step == "" {
		return
	}
	for _, en := range a.l.Enrollments {
		if a.engagement(en, step, seq, enr) < 0 {
			continue
		}
		if !slices.Contains(en.Opened, step) {
			en.Opened = append(en.Opened, step)
		}
		if typ == EventEmailClicked && !slices.Contains(en.Clicked, step) {
			en.Clicked = append(en.Clicked, step)
		}
	}
}

func (a *applier) exitGoals(n int) {
	ev := a.ev
	for _, en := range a.l.Enrollments[:n] {
		if en == nil || en.Status.Ended() {
			continue
		}
		si := a.info(en)
		if si == nil {
			continue
		}
		x := &si.seq.Exit
		switch {
		case slices.Contains(x.On, ev.Type):
			a.exit(en, "goal:"+ev.Type)
		case x.Condition != nil && a.cond(x.Condition, en, "exit", en.Sequence, en.Step, ""):
			a.exit(en, "goal:condition")
		}
	}
}

func (a *applier) waitFor(n int) {
	ev := a.ev
	for _, en := range a.l.Enrollments[:n] {
		if en == nil || en.Status != EnrollmentActive || en.WaitingFor != ev.Type {
			continue
		}
		si := a.info(en)
		if si == nil {
			continue
		}
		idx, ok := si.steps[en.Step]
		if !ok {
			continue
		}
		st := si.seq.Steps[idx]
		if st.Kind != StepWaitFor {
			continue
		}
		if st.Match != nil && !a.cond(st.Match, en, "wait_for", en.Sequence, st.ID, "") {
			a.emit(Ignored{Event: ev.ID, Reason: "wait_for " + en.Sequence + "/" + st.ID + ": condition does not match"})
			continue
		}
		en.WaitingFor, en.NextRunAt = "", time.Time{}
		a.advance(en, si, idx, st.Then)
		a.runEnrollment(en, si)
	}
}

func (a *applier) enroll() {
	l, ev := a.l, a.ev
	for _, si := range a.e.enrollOn[ev.Type] {
		s := si.seq
		n, active := 0, false
		var last time.Time
		for _, en := range l.Enrollments {
			if en == nil || en.Sequence != s.ID {
				continue
			}
			n++
			if !en.Status.Ended() {
				active = true
				break
			}
			if en.StartedAt.After(last) {
				last = en.StartedAt
			}
		}
		if active {
			continue // one active enrollment per sequence at a time
		}
		if n > 0 {
			switch s.Enroll.Reenroll.Mode {
			case ReenrollAlways:
			case ReenrollAfter:
				if a.now.Sub(last) < s.Enroll.Reenroll.After {
					continue
				}
			default: // never
				continue
			}
		}
		if l.Status.Suppressed() && !s.Transactional {
			a.emit(Ignored{Event: ev.ID, Reason: "not enrolled in " + s.ID + ": lead " + string(l.Status)})
			continue
		}
		if !a.cond(s.Enroll.Condition, nil, "enroll", s.ID, "", "") {
			continue
		}
		en := &Enrollment{
			ID:        EnrollmentID(l.Key, s.ID, n+1),
			Sequence:  s.ID,
			Version:   s.Version,
			Status:    EnrollmentActive,
			StartedAt: a.now,
		}
		if len(s.Steps) > 0 {
			en.Step = s.Steps[0].ID
		}
		if s.Exit.Condition != nil && a.cond(s.Exit.Condition, en, "exit", s.ID, en.Step, "") {
			a.emit(Ignored{Event: ev.ID, Reason: "not enrolled in " + s.ID + ": exit goal already reached"})
			continue
		}
		l.Enrollments = append(l.Enrollments, en)
		a.emit(Enrolled{Enrollment: en.ID, Sequence: s.ID, Version: s.Version, Trigger: ev.ID})
		if len(s.Steps) == 0 {
			a.complete(en)
			continue
		}
		a.runEnrollment(en, si)
	}
}
